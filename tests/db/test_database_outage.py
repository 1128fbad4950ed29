"""The database goes away or changes underneath a running server: 503s that say so, then recovery; never a 500."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from marconi.config import Config
from marconi.db import embedded, make_engine, migrate


def _start(pgdata: Path) -> str:
    """Start (or restart) an embedded server in ``pgdata`` from a process of its own; return its URL."""
    code = ("from pathlib import Path; from marconi.db import embedded; "
            f"print(embedded.ensure_server(Path({str(pgdata)!r})))")
    for attempt in range(5):  # after a kill, the old server's processes take a moment to let go of its memory
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        if out.returncode == 0:
            return out.stdout.strip().splitlines()[-1]
        time.sleep(1 + attempt)
    raise RuntimeError(f"the embedded server in {pgdata} did not start: {out.stderr[-500:]}")


@pytest.fixture()
def own_server(tmp_path):
    """A PostgreSQL of this test's own (the session's shared one must not be stopped), migrated: (pgdata, url)."""
    pgdata = tmp_path / "pg"
    url = _start(pgdata)
    eng = make_engine(Config(), url=url)
    migrate.upgrade(eng)
    eng.dispose()
    yield pgdata, url
    embedded.stop(pgdata)


def test_a_database_outage_gives_503s_then_recovers_without_a_500(own_server, base_config):
    from marconi import create_app

    pgdata, url = own_server
    app = create_app({"database_url": url, "home": str(base_config.home)})
    seen: list[tuple[float, int, str | None, str | None]] = []
    stop = threading.Event()
    errors: list = []

    def load(path: str) -> None:
        client = app.test_client()
        while not stop.is_set():
            r = client.get(path)
            body = r.get_json(silent=True) or {}
            seen.append((time.monotonic(), r.status_code, r.headers.get("Retry-After"), body.get("code")))
            if r.status_code != 200:
                errors.append(body.get("error"))
            time.sleep(0.02)

    threads = [threading.Thread(target=load, args=(p,)) for p in ("/api/status", "/api/songs?q=a", "/api/status")]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        stopping_at = time.monotonic()
        embedded.stop(pgdata)
        down_at = time.monotonic()
        time.sleep(2.0)
        restart_at = time.monotonic()
        _start(pgdata)
        up_at = time.monotonic()
        deadline = up_at + 20
        while time.monotonic() < deadline and not any(t > up_at and s == 200 for t, s, _, _ in seen):
            time.sleep(0.2)
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    statuses = {s for _, s, _, _ in seen}
    outage = [(s, retry, code) for t, s, retry, code in seen if down_at < t < restart_at]
    assert 500 not in statuses, sorted(statuses)
    assert outage and all(s == 503 and retry == "5" and code == "database_unavailable" for s, retry, code in outage)
    assert [(s, code) for t, s, _, code in seen if t < stopping_at and s != 200] == [], errors
    recovered = [t for t, s, _, _ in seen if t > up_at and s == 200]
    assert recovered  # it recovers by itself
    assert all(s == 200 for t, s, _, _ in seen if t > recovered[0] + 1.0)  # and stays up


def test_a_schema_changed_under_a_running_server_gets_503_saying_to_upgrade(own_server, base_config):
    from marconi import create_app

    _, url = own_server
    client = create_app({"database_url": url, "home": str(base_config.home)}).test_client()
    assert client.get("/api/images/1/tags").status_code == 404  # a current schema: no such image
    eng = make_engine(Config(), url=url)
    migrate.downgrade(eng, "0006")  # e.g. a `marconi db downgrade` from another checkout
    try:
        r = client.get("/api/images/1/tags")
        assert r.status_code == 503 and r.get_json()["code"] == "schema_outdated"
        assert "marconi db upgrade" in r.get_json()["error"] and r.headers["Retry-After"] == "5"
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["status"] == "schema outdated"
    finally:
        migrate.upgrade(eng)
        eng.dispose()
    assert client.get("/api/images/1/tags").status_code == 404  # upgraded again: answers as before


def test_the_cli_says_it_cannot_reach_the_database_in_one_line():
    from click.testing import CliRunner

    from marconi.cli import main

    dead = "postgresql://nobody@127.0.0.1:9/nowhere"
    for args in (["db", "upgrade"], ["sql"], ["status"]):
        result = CliRunner().invoke(main, ["--database-url", dead, *args])
        assert result.exit_code == 1, (args, result.output)
        assert "cannot reach the database" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    verbose = CliRunner().invoke(main, ["--database-url", dead, "-v", "db", "upgrade"])
    assert verbose.exit_code == 1 and isinstance(verbose.exception, sa.exc.OperationalError)


def test_405_says_which_methods_are_allowed(client):
    r = client.delete("/api/radio")
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) >= {"POST"}
    assert r.get_json()["code"] == "method_not_allowed"


def test_db_status_tells_the_truth_about_a_dead_server(own_server):
    """A server killed outright leaves its postmaster.pid behind; the status must not call it running."""
    import os
    import signal

    pgdata, _ = own_server
    info = embedded.status(pgdata)
    assert info["running"] and info["initialised"]
    os.kill(info["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while embedded.status(pgdata)["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (pgdata / "postmaster.pid").exists() and not embedded.status(pgdata)["running"]
    stale = (pgdata / "postmaster.pid").read_text()
    (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{pgdata}\n")  # a pid in use, but not a postmaster
    assert not embedded.status(pgdata)["running"]
    (pgdata / "postmaster.pid").write_text(stale)  # PostgreSQL itself starts over its own stale lock file
    _start(pgdata)
    assert embedded.status(pgdata)["running"]


def test_the_watchdog_starts_a_killed_server_again(own_server):
    import os
    import signal

    from marconi.db.watchdog import EmbeddedWatchdog

    pgdata, url = own_server
    watchdog = EmbeddedWatchdog(pgdata)
    assert watchdog.check_once() and watchdog.restarts == 0  # running: nothing to do
    os.kill(embedded.status(pgdata)["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not (watchdog.check_once() and watchdog.restarts == 1) and time.monotonic() < deadline:
        time.sleep(1)  # the killed server's processes may hold its memory for a moment
    assert watchdog.restarts == 1 and embedded.status(pgdata)["running"]
    eng = make_engine(Config(), url=url)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    eng.dispose()
