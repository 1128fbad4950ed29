"""marconi_reader's limits hold whatever the reader does (issue #13): statements past the limit are cancelled even
after ``SET statement_timeout = 0``, stored settings never reach a session, temp files and connections are capped,
no temp tables, no other databases, and no way in but the server user's own socket."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from marconi.db import make_engine, migrate, reader_url, with_database


@pytest.fixture(scope="module")
def url(new_database, base_config) -> str:
    """A database migrated in place, as `marconi db upgrade` does it (a template copy loses database grants)."""
    url = new_database(migrated=False)
    eng = make_engine(base_config, url=url, poolclass=sa.NullPool)
    migrate.upgrade(eng)
    eng.dispose()
    return url


@pytest.fixture(scope="module")
def owner(url, base_config):
    """An autocommit engine as the owner (the embedded server's superuser)."""
    eng = make_engine(base_config, url=url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    yield eng
    with eng.connect() as conn:  # role settings are cluster-wide: leave none behind for other modules' readers
        conn.execute(sa.text("SELECT marconi_reader_restore_settings()"))
        conn.execute(sa.text("ALTER ROLE marconi_reader PASSWORD NULL"))
    eng.dispose()


@contextmanager
def reader(url: str, database: str | None = None):
    """An autocommit connection as marconi_reader (to ``database`` when given)."""
    conn = psycopg2.connect(reader_url(with_database(url, database) if database else url))
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def show(conn, *names: str) -> dict[str, str]:
    with conn.cursor() as cur:
        values = {}
        for name in names:
            cur.execute(f"SHOW {name}")
            values[name] = cur.fetchone()[0]
    return values


def skip_without_login_trigger(owner) -> None:
    """Skip unless the server has login event triggers (PostgreSQL 17+), which migration 0009 relies on."""
    with owner.connect() as conn:
        version = int(conn.execute(sa.text("SHOW server_version_num")).scalar())
    if version < 170000:
        pytest.skip(f"needs PostgreSQL 17+ (login event triggers); this server is {version}: there migration 0009 "
                    "adds none, and the reader guard removes stored reader settings instead")


# ------------------------------------------------------------------ 1. statements stop, whatever the reader SETs
def test_a_query_after_set_statement_timeout_0_is_cancelled_by_the_guard(url, owner):
    from marconi.db.reader_guard import ReaderGuard, ReaderLimits

    guard = ReaderGuard(url, every_s=0.5, grace_s=1.0, limits=ReaderLimits(statement_s=2, idle_in_transaction_s=60))
    guard.start()
    try:
        with reader(url) as conn, conn.cursor() as cur:
            cur.execute("SET statement_timeout = 0")
            started = time.monotonic()
            with pytest.raises(psycopg2.errors.QueryCanceled):
                cur.execute("SELECT pg_sleep(60)")
            waited = time.monotonic() - started
            cur.execute("SELECT 1")  # the session lives on: only the query was cancelled
    finally:
        guard.stop()
    assert 2 < waited < 5, f"cancelled after {waited:.1f} s (limit 2 s, grace 1 s, a check every 0.5 s)"


def test_a_transaction_left_idle_after_lifting_its_timeout_is_ended(url, owner):
    from marconi.db.reader_guard import ReaderGuard, ReaderLimits

    guard = ReaderGuard(url, every_s=0.5, grace_s=0.5, limits=ReaderLimits(statement_s=30, idle_in_transaction_s=1))
    with reader(url) as conn, conn.cursor() as cur:
        cur.execute("SET idle_in_transaction_session_timeout = 0")
        conn.autocommit = False
        cur.execute("SELECT count(*) FROM song_vectors")  # holds a lock a model swap would wait for
        time.sleep(2)
        done = guard.check_once()
        assert done is not None and done.terminated
        with pytest.raises(psycopg2.OperationalError):
            cur.execute("SELECT 1")
    guard.stop()


def test_the_guard_reads_the_limits_migration_0009_stores(owner):
    from marconi.db.reader_guard import ReaderLimits, duration_s, stored_limits

    with owner.connect() as conn:
        assert stored_limits(conn) == ReaderLimits(statement_s=30, idle_in_transaction_s=60)
    assert (duration_s("30s"), duration_s("1min"), duration_s("500"), duration_s("2h")) == (30, 60, 0.5, 7200)


def test_a_guard_without_the_rights_to_see_and_cancel_says_which_to_grant(url, owner, caplog):
    from marconi.db.reader_guard import ReaderGuard, missing_rights

    with owner.connect() as conn:
        conn.execute(sa.text("DROP ROLE IF EXISTS marconi_test_plain_owner"))
        conn.execute(sa.text("CREATE ROLE marconi_test_plain_owner LOGIN"))
        conn.execute(sa.text("GRANT EXECUTE ON FUNCTION marconi_reader_restore_settings() TO marconi_test_plain_owner"))
    plain = url.replace("postgres:@", "marconi_test_plain_owner:@")
    guard = ReaderGuard(plain)
    try:
        with guard.engine.connect() as conn:
            assert missing_rights(conn) == ["pg_read_all_stats", "pg_signal_backend"]
        guard.check_once()
        assert "GRANT pg_read_all_stats, pg_signal_backend TO it" in caplog.text
    finally:
        guard.stop()
        with owner.connect() as conn:
            conn.execute(sa.text("DROP OWNED BY marconi_test_plain_owner"))  # its grant
            conn.execute(sa.text("DROP ROLE marconi_test_plain_owner"))
    with owner.connect() as conn:
        assert missing_rights(conn) == []  # the embedded server's owner is a superuser


def test_gunicorns_master_and_marconi_sql_run_a_guard(url, owner, monkeypatch):
    import logging
    import threading

    from marconi import gunicorn_hooks
    from marconi.cli.sql import reader_guarded

    class Server:
        log = logging.getLogger("test.gunicorn")

    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv(gunicorn_hooks.WATCH_ENV, raising=False)
    before = set(threading.enumerate())
    gunicorn_hooks.when_ready(Server())
    started = [t for t in threading.enumerate() if t not in before and t.name == "marconi-reader-guard"]
    assert len(started) == 1 and started[0].is_alive()
    started[0].stop()
    with reader_guarded(url) as guard:
        assert guard.is_alive()
    guard.join(timeout=5)
    assert not guard.is_alive()


# ------------------------------------------------------------------ 2. what a reader stores never reaches a session
def test_settings_the_reader_stores_do_not_reach_the_next_session(url, owner):
    skip_without_login_trigger(owner)
    with owner.connect() as conn:
        defaults = {name: conn.execute(sa.text(f"SHOW {name}")).scalar() for name in ("work_mem", "search_path")}
        database = conn.execute(sa.text("SELECT current_database()")).scalar()
    with reader(url) as conn, conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = off")
        for statement in ("ALTER ROLE marconi_reader SET statement_timeout = 0",
                          "ALTER ROLE marconi_reader SET idle_in_transaction_session_timeout = 0",
                          "ALTER ROLE marconi_reader SET default_transaction_read_only = off",
                          f'ALTER ROLE marconi_reader IN DATABASE "{database}" SET statement_timeout = 0',
                          f"ALTER ROLE marconi_reader IN DATABASE \"{database}\" SET work_mem = '8GB'",
                          "ALTER ROLE marconi_reader SET search_path = 'elsewhere'",
                          "ALTER ROLE marconi_reader PASSWORD 'mine now'"):
            cur.execute(statement)  # PostgreSQL allows a role all of these on itself
    with reader(url) as conn:
        assert show(conn, "statement_timeout", "idle_in_transaction_session_timeout", "default_transaction_read_only",
                    "work_mem", "search_path", "temp_file_limit") == {
            "statement_timeout": "30s", "idle_in_transaction_session_timeout": "1min",
            "default_transaction_read_only": "on", "temp_file_limit": "256MB", **defaults}
    with owner.connect() as conn:
        stored = conn.execute(sa.text("SELECT setdatabase, setconfig FROM pg_db_role_setting "
                                      "WHERE setrole = 'marconi_reader'::regrole")).all()
        assert stored == [(0, ["statement_timeout=30s", "idle_in_transaction_session_timeout=60s",
                               "temp_file_limit=256MB"])]
        conn.execute(sa.text("ALTER ROLE marconi_reader PASSWORD NULL"))


def test_a_stored_read_only_default_cannot_keep_the_readers_settings(url, owner):
    """A login made read-only cannot remove what is stored, but the session is held to the limits all the same."""
    skip_without_login_trigger(owner)
    with reader(url) as conn, conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = off")
        cur.execute("ALTER ROLE marconi_reader SET default_transaction_read_only = on")
        cur.execute("ALTER ROLE marconi_reader SET statement_timeout = 0")
        cur.execute("ALTER ROLE marconi_reader SET work_mem = '8GB'")
    try:
        with reader(url) as conn:
            assert show(conn, "statement_timeout", "work_mem") == {"statement_timeout": "30s", "work_mem": "4MB"}
    finally:
        with owner.connect() as conn:
            removed = conn.execute(sa.text("SELECT marconi_reader_restore_settings()")).scalar()
    assert set(removed) == {"default_transaction_read_only=on", "statement_timeout=0", "work_mem=8GB"}


# ------------------------------------------------------------------ 3. temp files and connections are capped
def test_temp_files_are_capped_and_the_reader_cannot_lift_the_cap(url, owner):
    with reader(url) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SET temp_file_limit = -1")
        cur.execute("SET work_mem = '64kB'")
        with pytest.raises(psycopg2.errors.ConfigurationLimitExceeded, match="temp_file_limit"):
            cur.execute("SELECT count(*) FROM generate_series(1, 20000000)")  # spills about 500 MB


def test_connections_are_capped_and_the_reader_cannot_lift_the_cap(url, owner):
    with owner.connect() as conn:
        limit = conn.execute(sa.text("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'marconi_reader'")).scalar()
    assert 0 < limit <= 20
    opened = []
    try:
        for _ in range(limit):
            opened.append(psycopg2.connect(reader_url(url)))
        with pytest.raises(psycopg2.OperationalError, match="too many connections for role"):
            opened.append(psycopg2.connect(reader_url(url)))
        opened.pop().close()
        opened[0].autocommit = True
        with opened[0].cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SET default_transaction_read_only = off")
            cur.execute("ALTER ROLE marconi_reader CONNECTION LIMIT -1")
    finally:
        for conn in opened:
            conn.close()


# ------------------------------------------------------------------ 4. no temp tables (the owner keeps them)
def test_the_reader_cannot_create_temp_tables(url, owner):
    with reader(url) as conn, conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("CREATE TEMP TABLE mine (id int)")
    with owner.connect() as conn:
        assert conn.execute(sa.text("SELECT has_database_privilege(current_user, current_database(), 'TEMP')")).scalar()
        conn.execute(sa.text("CREATE TEMP TABLE _owner_kept_temp (id int)"))  # the importers need them


def test_the_importers_temp_tables_still_work(url, base_config, tmp_path):
    from marconi.importers.playlists import import_playlists

    (tmp_path / "song_hash.txt").write_text("".join(f"{i}\tsong {i}\tartist {i}\n" for i in range(5)))
    (tmp_path / "train.txt").write_text("h\nh\n0 1 2\n2 3 4\n")
    eng = make_engine(base_config, url=url)
    import_playlists(eng, tmp_path, progress=False)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM playlists")).scalar() == 2
    eng.dispose()


# ------------------------------------------------------------------ 5. no other databases
@pytest.mark.parametrize("database", ["postgres", "template1"])
def test_the_reader_cannot_connect_to_other_databases(url, owner, database):
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        with reader(url, database):
            pass


# ------------------------------------------------------------------ 6. no way in without a password or the socket
def test_the_embedded_server_has_no_tcp_port_and_asks_a_password_if_one_opens(owner):
    with owner.connect() as conn:
        assert conn.execute(sa.text("SHOW listen_addresses")).scalar() == ""
        lax = conn.execute(sa.text("SELECT type, address, auth_method FROM pg_hba_file_rules "
                                   "WHERE type LIKE 'host%' AND auth_method NOT IN ('scram-sha-256', 'reject')")).all()
        assert lax == []
        assert conn.execute(sa.text("SHOW unix_socket_permissions")).scalar() == "0700"


def test_only_the_servers_own_user_can_reach_its_socket(pg_server, url):
    pgdata, _ = pg_server
    socket_dir = (pgdata / "postmaster.pid").read_text().splitlines()[4]  # postmaster.pid's fifth line
    socket = Path(socket_dir) / ".s.PGSQL.5432"
    assert stat.S_IMODE(socket.stat().st_mode) == 0o700
    if os.geteuid() != 0 or not shutil.which("su"):
        pytest.skip("connecting as another user needs root")
    from marconi.cli.sql import find_psql

    out = subprocess.run(["su", "nobody", "-s", "/bin/sh", "-c", f"{find_psql()} '{reader_url(url)}' -c 'SELECT 1'"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "Permission denied" in out.stderr


# ------------------------------------------------------------------ the migration goes back and forth
def test_migration_0009_downgrades_and_upgrades_again(url, owner, base_config):
    eng = make_engine(base_config, url=url, poolclass=sa.NullPool)
    try:
        migrate.downgrade(eng, "0008")
        with reader(url) as conn, conn.cursor() as cur:
            assert show(conn, "default_transaction_read_only", "temp_file_limit") == {
                "default_transaction_read_only": "on", "temp_file_limit": "-1"}  # 0004's stored settings, again
            cur.execute("SET default_transaction_read_only = off")
            cur.execute("CREATE TEMP TABLE allowed_again (id int)")
    finally:
        migrate.upgrade(eng)
        eng.dispose()
    with reader(url) as conn, conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("SET default_transaction_read_only = off")
        cur.execute("CREATE TEMP TABLE refused (id int)")
