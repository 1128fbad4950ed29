"""gunicorn server hooks for `marconi serve` (loaded with ``-c python:marconi.gunicorn_hooks``).

``when_ready`` runs once in the master process: with ``MARCONI_WATCH_PGDATA`` set (by `marconi serve` when it uses
the embedded PostgreSQL), it starts the watchdog that restarts that server if it dies (:mod:`marconi.db.watchdog`).
"""

from __future__ import annotations

import os
from pathlib import Path

WATCH_ENV = "MARCONI_WATCH_PGDATA"


def when_ready(server) -> None:
    """Start watching the embedded PostgreSQL, if this server uses one."""
    pgdata = os.environ.get(WATCH_ENV)
    if not pgdata:
        return
    from marconi.config import from_env, setup_logging
    from marconi.db.watchdog import EmbeddedWatchdog

    setup_logging(from_env().log_level)  # the watchdog's lines get the same format (and time) as the app's
    watchdog = EmbeddedWatchdog(Path(pgdata))
    watchdog.start()
    server.log.info("watching the embedded PostgreSQL in %s (restarted if it stops)", pgdata)
