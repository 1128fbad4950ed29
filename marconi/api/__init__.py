"""HTTP API: one blueprint per resource; views read input through ``params``, call one function, return JSON.

``engine()`` and ``config()`` give a view the app's database engine and settings.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from marconi.config import Config


def engine() -> sa.Engine:
    """The app's SQLAlchemy engine (set up by ``create_app``)."""
    return current_app.extensions["marconi.engine"]


def config() -> Config:
    """The app's settings."""
    return current_app.config["MARCONI"]
