"""Embedding stages: read ingest tables, train or encode, write vector tables."""
