"""Benchmark reverse image search over HTTP: POST /api/images/search under gunicorn, p50/p95 latency.

Uses the database the `marconi` command uses (run the demo first so an image model serves). The queries are real
photos from a folder; each request is sent sequentially from one client.

    .venv/bin/python bench/bench_image_search.py --queries ../shared/data/images/skimage-samples --n 100
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import requests

from marconi.config import from_env
from marconi.db import database_url
from marconi.serving import background_gunicorn


def main() -> None:
    """Start gunicorn, send the queries, print the figures and the command."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=Path, required=True, help="folder of query photos (searched recursively)")
    ap.add_argument("--n", type=int, default=100, help="requests to time")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    files = sorted(p for p in args.queries.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not files:
        raise SystemExit(f"no photos under {args.queries}")
    with background_gunicorn(database_url(from_env()), workers=args.workers) as base:
        sess = requests.Session()
        for f in files[: 2 * args.workers]:  # warm up: each worker loads the encoder once
            sess.post(base + "/api/images/search", files={"image": f.read_bytes()}, data={"k": args.k})
        times, sizes = [], []
        for i in range(args.n):
            f = files[i % len(files)]
            data = f.read_bytes()
            t0 = time.perf_counter()
            r = sess.post(base + "/api/images/search", files={"image": (f.name, data)}, data={"k": args.k})
            times.append((time.perf_counter() - t0) * 1000)
            sizes.append(len(data))
            assert r.status_code == 200, r.text
    t = np.asarray(times)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; command: {' '.join(sys.argv)}")
    print(f"requests: {len(t)}, photos: {len(files)} (median {int(np.median(sizes)) // 1024} KB), k={args.k}")
    print(f"image search HTTP p50 {np.percentile(t, 50):.0f} ms, p95 {np.percentile(t, 95):.0f} ms, "
          f"mean {t.mean():.0f} ms")


if __name__ == "__main__":
    main()
