"""The README's generated blocks: the text between a ``begin`` and an ``end`` marker, replaced by a script's output.

Used by ``scripts/config_table.py`` (the configuration table) and ``scripts/readme_tour.py`` (the tour).
"""

from __future__ import annotations


def replace_between(readme: str, begin: str, end: str, body: str) -> str:
    """``readme`` with the text between the markers ``begin`` and ``end`` replaced by ``body`` on lines of its own."""
    start, stop = readme.find(begin), readme.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"the README has no {begin!r} … {end!r} markers")
    return readme[: start + len(begin)] + "\n" + body + "\n" + readme[stop:]
