"""`marconi serve`: the API and pages under gunicorn."""

from __future__ import annotations

import os
import sys

import click

from marconi.cli.context import Ctx, pass_ctx


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="gunicorn worker processes (default: $MARCONI_GUNICORN_WORKERS or 2).")
@click.option("--connections", type=click.IntRange(min=1), default=None,
              help="Requests one worker holds at once; gevent workers wait on slow clients, image URLs and the "
                   "database without a thread each (default: $MARCONI_GUNICORN_CONNECTIONS or 100).")
@pass_ctx
def serve(c: Ctx, host, port, workers, connections):
    """Serve the API and pages with gunicorn (Ctrl-C stops).

    With the embedded PostgreSQL (no DATABASE_URL), the server is watched and started again if it stops; requests
    meanwhile get 503 with Retry-After.
    """
    from marconi.db import database_url
    from marconi.db.ann import warm_song_indexes
    from marconi.gunicorn_hooks import WATCH_ENV
    from marconi.serving import gunicorn_args

    with c.checked_engine().connect() as conn:  # the radio's kNN indexes into memory before the first request
        warmed = warm_song_indexes(conn)
    for w in warmed:
        click.echo(f"{w['index']} ({w['mb']} MB): " + ("loaded into shared_buffers" if w["loaded"] else
                   "not preloaded: needs pg_prewarm and shared_buffers of 3x its size (ALTER SYSTEM SET "
                   "shared_buffers, then restart PostgreSQL; `marconi db stop` for the embedded one)"))
    env = dict(os.environ, DATABASE_URL=database_url(c.config))
    if not c.config.database_url:  # the embedded server: gunicorn's master restarts it if it stops
        env[WATCH_ENV] = str(c.config.pgdata)
    args = gunicorn_args(host, port, c.config, workers=workers, connections=connections, access_log=True)
    click.echo(f"serving on http://{host}:{port}/  (API: /api/songs, /api/radio, /api/images/search; "
               f"{workers or c.config.gunicorn_workers} workers, up to {connections or c.config.gunicorn_connections} "
               "requests each)")
    os.execve(sys.executable, args, env)
