"""gunicorn server hooks for `marconi serve` (loaded with ``-c python:marconi.gunicorn_hooks``).

``when_ready`` runs once in the master process, which lives as long as the service:

- it starts the :class:`~marconi.db.reader_guard.ReaderGuard` that holds ``marconi_reader`` to its limits (a query
  past the statement limit is cancelled even after ``SET statement_timeout = 0``), for the embedded server and for
  an external DATABASE_URL alike;
- with ``MARCONI_WATCH_PGDATA`` set (by `marconi serve` when it uses the embedded PostgreSQL), it starts the
  watchdog that restarts that server if it dies (:mod:`marconi.db.watchdog`).
"""

from __future__ import annotations

import os
from pathlib import Path

WATCH_ENV = "MARCONI_WATCH_PGDATA"


def when_ready(server) -> None:
    """Start guarding the read-only role and, if this server uses the embedded PostgreSQL, watching it."""
    from marconi.config import from_env
    from marconi.db import database_url
    from marconi.db.reader_guard import ReaderGuard
    from marconi.logs import setup_logging

    config = from_env()
    setup_logging(config.log_level)  # the guard's and watchdog's lines get the same format (and time) as the app's
    pgdata = os.environ.get(WATCH_ENV)
    if pgdata:
        from marconi.db.watchdog import EmbeddedWatchdog

        EmbeddedWatchdog(Path(pgdata)).start()
        server.log.info("watching the embedded PostgreSQL in %s (restarted if it stops)", pgdata)
    ReaderGuard(database_url(config)).start()
    server.log.info("holding marconi_reader to its limits (queries past the statement limit are cancelled)")
