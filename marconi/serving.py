"""Running the app under gunicorn: the command line `marconi serve` uses, and a background server for benchmarks
and tests. Worker, connection and timeout defaults come from ``marconi.config``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from marconi.config import IMPORT_ROOT, Config, from_env

WSGI_APP = "marconi.wsgi:app"


def gunicorn_args(host: str, port: int, config: Config | None = None, *, workers: int | None = None,
                  connections: int | None = None, access_log: bool = False) -> list[str]:
    """The gunicorn command line serving ``marconi.wsgi:app`` with gevent workers.

    gevent workers read each request in a greenlet of their event loop, so a client that drips its headers or body
    a byte at a time holds a few kilobytes, not a worker thread: the threaded (gthread) workers used before read
    headers in a pool thread, and 16 slow clients starved 2 × 4 threads (tests/api/test_slow_clients.py). Database
    calls yield to the loop through psycogreen and CPU-bound work leaves it (:mod:`marconi.cooperative`).
    ``connections`` caps the requests one worker holds at once (gunicorn's ``--worker-connections``).

    Workers, connections and the timeout come from ``config`` (the environment's when None) unless given here.
    gunicorn's control socket is turned off: by default (gunicorn 25.1 and later) every server of a user shares one,
    ``$XDG_RUNTIME_DIR/gunicorn.ctl`` or ``~/.gunicorn/gunicorn.ctl``, so a second server (a test's, a benchmark's)
    would take it over from the first and remove it when it stops, and ``gunicornc`` would steer the wrong one.
    Marconi is stopped with a signal and never steered through it.
    """
    cfg = config or from_env()
    args = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}",
            "--workers", str(workers or cfg.gunicorn_workers), "--worker-class", "gevent",
            "--worker-connections", str(connections or cfg.gunicorn_connections),
            "--timeout", str(cfg.gunicorn_timeout), "--no-control-socket",
            "--config", "python:marconi.gunicorn_hooks"]  # the embedded PostgreSQL's watchdog, when one is used
    return args + (["--access-logfile", "-"] if access_log else []) + [WSGI_APP]


@contextmanager
def background_gunicorn(database_url: str, workers: int | None = None, connections: int | None = None,
                        env: dict | None = None, ready_timeout: float = 60.0) -> Iterator[str]:
    """Serve marconi.wsgi:app against ``database_url`` on a free loopback port; yield its base URL once /healthz
    answers.

    ``env`` adds environment variables (e.g. MARCONI_* settings). The server is stopped on exit.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    full_env = dict(os.environ, DATABASE_URL=database_url, MARCONI_LOG_LEVEL="WARNING", **(env or {}))
    args = gunicorn_args("127.0.0.1", port, from_env(full_env), workers=workers, connections=connections)
    # cwd: `python -m gunicorn` puts it first on sys.path, so the server imports the marconi this process runs
    proc = subprocess.Popen(args, cwd=IMPORT_ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, ready_timeout)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def wait_until_healthy(base: str, proc: subprocess.Popen, timeout: float) -> None:
    """Wait until ``base``/healthz answers 200; RuntimeError when ``proc`` (the server) exits or ``timeout`` passes."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(base + "/healthz", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not come up on {base} (exit code {proc.poll()})")
        time.sleep(0.2)
