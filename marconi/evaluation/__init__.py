"""Offline quality measures on held-out data, against simple baselines: `marconi eval ...`."""
