"""HTTP API: one blueprint per resource; views read input through ``params``, call one function, return JSON.

``engine()`` and ``config()`` give a view the app's database engine and settings; ``read_engine()`` is where
read-only views read (a healthy read replica when there are any).
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from marconi.config import Config


def engine() -> sa.Engine:
    """The app's SQLAlchemy engine (set up by ``create_app``)."""
    return current_app.extensions["marconi.engine"]


def read_engine():
    """Where a read-only view reads (radio, search, songs, images, artists, tags): a healthy read replica, else the
    primary; an engine, or with DATABASE_REPLICA_URLS a ``marconi.db.replicas.ReadRouter``, both opened with
    ``connect()``. Writes use :func:`engine`."""
    return current_app.extensions.get("marconi.read_engine") or engine()


def config() -> Config:
    """The app's settings."""
    return current_app.config["MARCONI"]
