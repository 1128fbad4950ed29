"""Time POST /api/radio against a running Marconi, so two versions can be compared on the same machine.

Each request asks for a 25-song radio from 1 to 3 random seeds ``<prefix>:<i>`` (i below ``--songs``), the same
sequence for every run of one ``--seed`` (7 unless given). Prints p50 / p95 / mean latency in ms and the requests
per second of one client. Start the servers first, e.g. on a database built by
``bench/bench_radio.py --sizes 100000 --no-http``:

    DATABASE_URL=postgresql://…/marconi_bench_100000 .venv/bin/marconi serve --port 5001
    .venv/bin/python bench/bench_radio_http.py --url http://127.0.0.1:5001 --requests 300
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import requests


def main() -> None:
    """Parse arguments, send the requests, print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="base URL of the server, e.g. http://127.0.0.1:5001")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--songs", type=int, default=100_000, help="seed keys are <prefix>:0 .. <prefix>:songs-1")
    ap.add_argument("--prefix", default="bench")
    ap.add_argument("--variety", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=7, help="random seed of the request sequence (another: other seeds)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    session = requests.Session()
    bodies = [{"seeds": [f"{args.prefix}:{rng.randrange(args.songs)}" for _ in range(rng.randint(1, 3))],
               "size": 25, **({"variety": args.variety} if args.variety else {})} for _ in range(args.requests)]
    for body in bodies[:10]:  # warm the server's caches
        session.post(args.url + "/api/radio", json=body, timeout=30)
    times = []
    t_all = time.perf_counter()
    for body in bodies:
        t0 = time.perf_counter()
        r = session.post(args.url + "/api/radio", json=body, timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{r.status_code}: {r.text[:300]}")
    wall = time.perf_counter() - t_all
    times.sort()
    print(json.dumps({"url": args.url, "requests": len(times), "p50_ms": round(statistics.median(times), 2),
                      "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
                      "mean_ms": round(statistics.fmean(times), 2), "per_second": round(len(times) / wall, 1)}))


if __name__ == "__main__":
    main()
