"""Database access: engine creation and the functions every SQL statement goes through.

This package imports neither Flask nor torch. Functions in its modules take a connection first, return plain
data, and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

from marconi.config import Config

log = logging.getLogger(__name__)


def database_url(config: Config) -> str:
    """Return the configured DATABASE_URL, or start the embedded server and return its URL."""
    if config.database_url:
        return config.database_url
    from marconi.db.embedded import ensure_server

    return ensure_server(config.pgdata)


def with_database(url: str, name: str) -> str:
    """Return the libpq URL ``url`` pointing at database ``name`` (host, socket and user kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq URL into one SQLAlchemy's psycopg2 dialect accepts."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def make_engine(config: Config, url: str | None = None, **kwargs) -> sa.Engine:
    """Create a SQLAlchemy engine for the configured database (embedded when DATABASE_URL is unset)."""
    url = url or database_url(config)
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(sqlalchemy_url(url), **kwargs)
