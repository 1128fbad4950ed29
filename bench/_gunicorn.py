"""Start the app under gunicorn on a free loopback port for a benchmark, and stop it afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def gunicorn(database_url: str, workers: int = 2, ready_timeout: float = 40.0) -> Iterator[str]:
    """Serve wsgi:app against ``database_url``; yield its base URL once /healthz answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=database_url, MARCONI_LOG_LEVEL="WARNING")
    from marconi.cli import gunicorn_args

    proc = subprocess.Popen(gunicorn_args("127.0.0.1", port, workers), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait()
