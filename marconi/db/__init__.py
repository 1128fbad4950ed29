"""Database access: engine creation and the functions every SQL statement goes through.

This package imports neither Flask nor torch. Functions in its modules take a connection first, return plain
data, and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import sqlalchemy as sa

from marconi.config import Config

log = logging.getLogger(__name__)

READER = "marconi_reader"  # the read-only role of migration 0004, for users' SQL (`marconi sql`)


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


def reader_url(url: str, password: str | None = None) -> str:
    """Return ``url`` with the user replaced by the read-only role (and its password when given)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = READER + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


def hide_password(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) written as ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        auth, host = netloc.rsplit("@", 1)
        user, colon, password = auth.partition(":")
        netloc = f"{user}{':***' if password else colon}@{host}"
    query = "&".join("password=***" if p.partition("=")[0] == "password" else p
                     for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq URL into one SQLAlchemy's psycopg2 dialect accepts."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


@contextmanager
def one_statement(conn: sa.Connection) -> Iterator[sa.Connection]:
    """``conn`` in autocommit for a caller that sends a single read statement (the radio): no BEGIN before it and
    no ROLLBACK after it reach the server, two round trips of four (a statement reads one snapshot anyway).

    psycopg2's ``autocommit`` flag is client-side (no statement is sent to set it); it is put back on exit. Use it on
    a connection that has not begun a transaction yet."""
    raw = conn.connection.dbapi_connection
    before = raw.autocommit
    raw.autocommit = True
    try:
        yield conn
    finally:
        raw.autocommit = before


def socket_has_news(dbapi_connection) -> bool:
    """Whether an idle connection's socket has something to read, or is closed: an idle PostgreSQL connection is sent
    nothing unless the server ends it (a restart, a terminated backend, idle_session_timeout), so news means it is
    most likely gone. One poll(2) with no wait: no round trip to the server."""
    if getattr(dbapi_connection, "closed", False):
        return True
    try:
        fd = dbapi_connection.fileno()
    except Exception:  # closed underneath us
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)  # POLLHUP and POLLERR are always reported
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def _replace_if_gone(engine: sa.Engine):
    """A pool ``checkout`` listener: a pooled connection whose socket has news is pinged, and replaced when the ping
    fails (the pool then opens a new one; if the server is down, that raises and the API answers 503)."""

    def check(dbapi_connection, connection_record, connection_proxy) -> None:
        if not socket_has_news(dbapi_connection):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"the pooled connection is gone: {exc}".strip()) from exc

    return check


def make_engine(config: Config, url: str | None = None, **kwargs) -> sa.Engine:
    """Create a SQLAlchemy engine for the configured database (embedded when DATABASE_URL is unset).

    A connection taken from the pool is checked without a round trip (:func:`socket_has_news`, as pgx's pool and
    go-sql-driver/mysql check an idle connection before reuse), not with SQLAlchemy's pre-ping ``SELECT 1``, which
    cost every request one round trip; a connection the server ended is replaced before it is used. Pass
    ``pool_pre_ping=True`` to ping instead."""
    url = url or database_url(config)
    pre_ping = kwargs.pop("pool_pre_ping", False)
    engine = sa.create_engine(sqlalchemy_url(url), pool_pre_ping=pre_ping, **kwargs)
    if not pre_ping:
        sa.event.listen(engine, "checkout", _replace_if_gone(engine))
    return engine
