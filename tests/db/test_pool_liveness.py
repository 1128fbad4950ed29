"""A pooled connection is checked without a round trip (marconi.db.socket_has_news), and one the server ended is
replaced before a request uses it: no SELECT 1 before every request, no error after a backend is terminated."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from marconi.db import make_engine, socket_has_news


def _counting_pings(engine: sa.Engine) -> list:
    """Count the round-trip pings the engine's dialect sends (SQLAlchemy's pre-ping goes through do_ping too)."""
    pings = []
    real = engine.dialect.do_ping

    def do_ping(dbapi_connection):
        pings.append(dbapi_connection)
        return real(dbapi_connection)

    engine.dialect.do_ping = do_ping
    return pings


def _pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()


def test_a_healthy_pooled_connection_is_reused_without_a_ping(db_url, base_config):
    engine = make_engine(base_config, url=db_url, pool_size=1, max_overflow=0)
    try:
        pings = _counting_pings(engine)
        first = _pid(engine)
        assert [_pid(engine) for _ in range(5)] == [first] * 5
        assert pings == []
    finally:
        engine.dispose()


def test_a_terminated_backend_is_replaced_before_a_request_uses_it(db_url, base_config):
    engine = make_engine(base_config, url=db_url, pool_size=1, max_overflow=0)
    admin = make_engine(base_config, url=db_url, poolclass=sa.pool.NullPool)
    try:
        pings = _counting_pings(engine)
        doomed = _pid(engine)
        with engine.connect() as conn:  # the pooled connection, idle between requests
            raw = conn.connection.dbapi_connection
        assert not socket_has_news(raw)
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": doomed}).scalar()
        deadline = time.monotonic() + 10
        while not socket_has_news(raw) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert socket_has_news(raw)  # the server said goodbye on the socket
        replaced = _pid(engine)  # no OperationalError: the pool replaced it at checkout
        assert replaced != doomed and len(pings) == 1
        assert _pid(engine) == replaced and len(pings) == 1  # the new one is reused, unpinged
    finally:
        engine.dispose()
        admin.dispose()


def test_pre_ping_can_still_be_asked_for(db_url, base_config):
    engine = make_engine(base_config, url=db_url, pool_size=1, max_overflow=0, pool_pre_ping=True)
    try:
        pings = _counting_pings(engine)
        _pid(engine)
        _pid(engine)
        assert len(pings) == 1  # SQLAlchemy's pre-ping: every checkout of a pooled (not fresh) connection
    finally:
        engine.dispose()


def test_the_socket_check_works_under_gevent_too(monkeypatch):
    """`marconi serve` runs gevent workers, whose monkey-patching replaces select.poll with a cooperative one."""
    import select
    import socket

    gevent_select = pytest.importorskip("gevent.select")

    class Conn:  # what the check needs of a DBAPI connection
        closed = 0

        def __init__(self, sock):
            self.sock = sock

        def fileno(self):
            return self.sock.fileno()

    for poll in (select.poll, gevent_select.poll):
        monkeypatch.setattr(select, "poll", poll)
        ours, theirs = socket.socketpair()
        try:
            assert not socket_has_news(Conn(ours))
            theirs.close()  # the server ends the connection
            assert socket_has_news(Conn(ours))
        finally:
            ours.close()
