"""HTTP API: one blueprint per resource; views parse, call one function, return JSON."""
