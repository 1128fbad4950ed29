"""Folders Marconi reads at run time that sit beside the package in a clone: the migrations and the SQL files.

The design keeps ``migrations/`` (Alembic) and ``sql/`` (readable queries, ``sql/examples/``) at the top of the
repository. The wheel carries them inside the package, as ``marconi/migrations`` and ``marconi/sql`` (pyproject.toml
maps the two folders in with ``package-dir``), so a Marconi installed from a wheel finds them beside its code, and a
clone reads the top-level folders themselves (setuptools' editable install does not make the mapped folders
importable, so a clone never goes through the package).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from marconi.config import REPO_ROOT


def bundled_dir(name: str) -> Path:
    """Return the folder ``name`` (``migrations`` or ``sql``): the clone's top-level one, else the wheel's copy."""
    if REPO_ROOT is not None:
        return REPO_ROOT / name
    return Path(str(files("marconi") / name))  # a wheel installs unpacked: this is a real folder


def migrations_dir() -> Path:
    """Return the Alembic script folder (env.py, versions/)."""
    return bundled_dir("migrations")


def sql_examples_dir() -> Path:
    """Return the folder of the SQL examples (``sql/examples``; each runs in the tests)."""
    return bundled_dir("sql") / "examples"
