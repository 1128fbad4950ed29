"""Time text → image search over HTTP (GET /api/images/search?q=) against a running Marconi.

The queries are the Caltech-101 folder names as words plus a few phrases, asked in turn after a warm-up (the first
query in each worker loads the sentence encoder, WordNet and the class vectors). Prints p50 / p95 / mean in ms.

    MARCONI_HOME=… .venv/bin/marconi serve --port 5003 &
    .venv/bin/python bench/bench_text_search.py --url http://127.0.0.1:5003 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import requests

PHRASES = ["a vehicle with two wheels", "dog on a beach", "something to drink from", "a flying machine",
           "leopard", "aeroplane", "a red flower", "musical instrument with strings"]


def main() -> None:
    """Parse arguments, ask every query ``rounds`` times, print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--caltech", type=Path, default=None,
                    help="folder whose subfolder names are used as queries (default: images/caltech101 of the sample "
                         "data, MARCONI_DATA_DIR or ../shared/data)")
    args = ap.parse_args()
    if args.caltech is None:
        from marconi.config import from_env

        args.caltech = from_env().data_dir / "images" / "caltech101"
    if not args.caltech.is_dir():
        ap.error(f"{args.caltech} is not a folder: give --caltech DIR or set MARCONI_DATA_DIR")
    names = sorted(p.name.replace("_", " ").lower() for p in args.caltech.iterdir() if p.is_dir())
    queries = names + PHRASES
    session = requests.Session()
    for q in queries[:8] * 2:  # warm both workers
        session.get(args.url + "/api/images/search", params={"q": q, "k": args.k}, timeout=120)
    times = []
    for _ in range(args.rounds):
        for q in queries:
            t0 = time.perf_counter()
            r = session.get(args.url + "/api/images/search", params={"q": q, "k": args.k}, timeout=30)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"{q!r}: {r.status_code} {r.text[:200]}")
    times.sort()
    print(json.dumps({"url": args.url, "requests": len(times), "p50_ms": round(statistics.median(times), 2),
                      "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
                      "mean_ms": round(statistics.fmean(times), 2)}))


if __name__ == "__main__":
    main()
