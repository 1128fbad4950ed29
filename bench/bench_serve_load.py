"""Benchmark the served app under concurrent photo searches, with or without slow clients (slowloris).

Starts gunicorn as `marconi serve` runs it, against the database the `marconi` command uses (run the demo first),
then for ``--seconds``: ``--clients`` threads post photo searches back to back while one probe asks ``/healthz``
every 0.1 s; with ``--slow-clients N``, N more connections drip request headers one byte every 0.5 s throughout.
Prints searches answered, search p50, and the health probe's p50 / p95 / max.

    .venv/bin/python bench/bench_serve_load.py --queries ../shared/data/images/skimage-samples
    .venv/bin/python bench/bench_serve_load.py --queries ../shared/data/images/skimage-samples --slow-clients 24
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests

from marconi.config import from_env
from marconi.db import database_url
from marconi.serving import background_gunicorn


def drip(base: str, n: int, stop: threading.Event) -> None:
    """Keep ``n`` connections sending one more header byte every 0.5 s until ``stop`` (each never finishes)."""
    host, port = base.removeprefix("http://").split(":")
    conns = [socket.create_connection((host, int(port)), timeout=5) for _ in range(n)]
    payload = itertools.cycle(b"X-Slow: " + b"a" * 60 + b"\r\n")
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    for c in conns:
        c.sendall(first)
    while not stop.wait(0.5):
        byte = bytes([next(payload)])
        for c in conns:
            try:
                c.sendall(byte)
            except OSError:
                pass
    for c in conns:
        c.close()


def main() -> None:
    """Start gunicorn, load it, print the figures and the command."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=Path, required=True, help="folder of query photos (searched recursively)")
    ap.add_argument("--clients", type=int, default=4, help="threads posting photo searches back to back")
    ap.add_argument("--slow-clients", type=int, default=0, help="connections dripping their headers meanwhile")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    photos = [p.read_bytes() for p in sorted(args.queries.rglob("*")) if p.suffix.lower() in {".jpg", ".png"}]
    cfg = from_env()
    with background_gunicorn(database_url(cfg), workers=args.workers) as base:
        for photo in photos[:4]:  # load the models in every worker before timing
            requests.post(base + "/api/images/search", files={"image": ("q", photo)}, timeout=120)
        stop = threading.Event()
        if args.slow_clients:
            threading.Thread(target=drip, args=(base, args.slow_clients, stop), daemon=True).start()
            time.sleep(1)
        searches: list[float] = []
        failures = 0
        deadline = time.monotonic() + args.seconds

        def search(offset: int) -> None:
            nonlocal failures
            for i in itertools.count(offset):
                if time.monotonic() > deadline:
                    return
                started = time.monotonic()
                r = requests.post(base + "/api/images/search", files={"image": ("q", photos[i % len(photos)])},
                                  timeout=60)
                if r.ok:
                    searches.append(time.monotonic() - started)
                else:
                    failures += 1

        threads = [threading.Thread(target=search, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        health = []
        while time.monotonic() < deadline:
            started = time.monotonic()
            requests.get(base + "/healthz", timeout=30)
            health.append(time.monotonic() - started)
            time.sleep(0.1)
        for t in threads:
            t.join()
        stop.set()
    ms = np.array(health) * 1000
    print(f"{len(searches)} searches answered in {args.seconds:g} s ({failures} failed), search p50 "
          f"{np.median(searches) * 1000:.0f} ms; /healthz p50 {np.median(ms):.0f} ms, p95 "
          f"{np.percentile(ms, 95):.0f} ms, max {ms.max():.0f} ms")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; command: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
