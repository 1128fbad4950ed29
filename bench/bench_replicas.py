"""Read replicas: radio throughput with 0, 1 and 2 hot standbys, and replay lag while 100k song vectors swap in.

Starts a primary and two streaming standbys (``pg_basebackup -R`` with replication slots) from the embedded
PostgreSQL's binaries (``MARCONI_TEST_PG_BIN`` to use others), each in its own directory under a temporary folder,
all on this machine. The primary gets yes_small and a song2vec model; the standbys receive it through WAL.

1. Throughput: gunicorn (``--workers``, gevent) serves the API with ``DATABASE_REPLICA_URLS`` naming 0, 1 or 2
   standbys; ``--threads`` client threads ask for radios (1-2 seeds from the 200 most played songs) for
   ``--seconds``; the configurations take turns for ``--rounds`` rounds. Each server's share of the radios comes
   from its scans of ``song_vectors`` (``pg_stat_user_tables``, read after gunicorn stops, so every backend has
   reported; the router's health checks never read that table).
2. Replay lag: a new song run of ``--vectors`` synthetic vectors of the served dimension is built on the primary
   (tracks, staging COPY, GiST and HNSW indexes, the swap: ``bench_radio.build``) while a thread samples each
   standby's lag every ``--sample`` seconds as the read router measures it (``marconi.db.replicas``: bytes behind
   the primary's WAL position; seconds since the primary first wrote past what the standby has replayed), until
   both serve the new run.

Every process here shares the machine's cores (2 here): the standbys, the primary, gunicorn and the clients all
compete for them, so adding standbys cannot add CPU; what the figures show is the cost or gain of spreading reads
over more servers on one box, not what separate machines would give.

Run by hand (figures go to docs/scaling.md):
    MARCONI_DATA_DIR=/work/shared/data .venv/bin/python bench/bench_replicas.py
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
import sqlalchemy as sa

from marconi.config import REPO_ROOT, from_env
from marconi.db import make_engine, migrate
from marconi.db.replicas import PrimaryPositions, primary_wal_lsn, replica_state
from marconi.serving import background_gunicorn

sys.path.insert(0, str((REPO_ROOT or Path.cwd()) / "tests"))  # the throwaway clusters the tests use
from servers import pg_bindir, start_cluster, start_standby, stop_cluster  # noqa: E402

FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}  # a throwaway primary


def autocommit(url: str) -> sa.Engine:
    """A superuser engine on ``url`` for looking at the server (no pool, autocommit)."""
    return make_engine(from_env(), url=url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def song_vector_scans(url: str) -> int:
    """Scans of ``song_vectors`` (each radio's kNN; health checks never read it) on the server at ``url`` so far."""
    engine = autocommit(url)
    with engine.connect() as conn:
        scans = conn.execute(sa.text("SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                                     "WHERE relname = 'song_vectors'")).scalar()
    engine.dispose()
    return scans or 0


def seeds_pool(primary: sa.Engine) -> list[str]:
    """The 200 most played songs that have vectors."""
    with primary.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT t.key FROM song_vectors sv JOIN tracks t ON t.id = sv.track_id JOIN playlist_tracks pt "
            "ON pt.track_id = t.id GROUP BY t.key ORDER BY count(*) DESC, t.key LIMIT 200")).scalars())


def load(base: str, seeds: list[str], threads: int, seconds: float) -> dict:
    """``threads`` clients asking radios of ``base`` for ``seconds``: requests/s, p50/p95 ms and errors."""
    latencies: list[float] = []
    errors: list[int] = []
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(n)
        with requests.Session() as session:  # closed after: no kept-alive connection delays gunicorn's stop
            while time.monotonic() < deadline:
                body = {"seeds": rng.sample(seeds, rng.randint(1, 2)), "size": 25}
                t0 = time.perf_counter()
                r = session.post(base + "/api/radio", json=body, timeout=60)
                (latencies if r.status_code == 200 else errors).append(
                    (time.perf_counter() - t0) * 1000 if r.status_code == 200 else r.status_code)

    t0 = time.monotonic()
    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - t0
    return {"rps": len(latencies) / elapsed, "p50": float(np.percentile(latencies, 50)),
            "p95": float(np.percentile(latencies, 95)), "errors": len(errors)}


def throughput(primary_url: str, standby_urls: list[str], seeds: list[str], args) -> list[dict]:
    """Each configuration (0, 1, 2 standbys) in turn for ``args.rounds`` rounds; one row per run."""
    rows = []
    servers = [primary_url, *standby_urls]
    for rnd in range(args.rounds):
        for n in range(len(standby_urls) + 1):
            before = [song_vector_scans(u) for u in servers]
            env = {"DATABASE_REPLICA_URLS": " ".join(standby_urls[:n])}
            with background_gunicorn(primary_url, workers=args.workers, env=env) as base:
                load(base, seeds, args.threads, args.warmup)
                result = load(base, seeds, args.threads, args.seconds)
            time.sleep(1.0)  # the backends have exited; their statistics are in
            done = [song_vector_scans(u) - b for u, b in zip(servers, before, strict=True)]
            result.update(round=rnd + 1, standbys=n, share=[d / max(1, sum(done)) for d in done])
            print(f"  round {rnd + 1}, {n} standby(s): {result['rps']:.1f} req/s, p50 {result['p50']:.1f} ms, "
                  f"p95 {result['p95']:.1f} ms, errors {result['errors']}, song_vectors scans by server "
                  + " / ".join(f"{s:.0%}" for s in result["share"]), flush=True)
            rows.append(result)
    return rows


def replay_lag(primary_url: str, standby_urls: list[str], vectors: int, dims: int, every: float) -> dict:
    """Build a run of ``vectors`` synthetic song vectors on the primary while sampling each standby's lag."""
    from bench_radio import build

    primary = autocommit(primary_url)
    standbys = [autocommit(u) for u in standby_urls]
    samples: list[list[tuple[float, int, float]]] = [[] for _ in standbys]
    positions = PrimaryPositions()
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            with primary.connect() as conn:
                lsn = primary_wal_lsn(conn)
            positions.record(lsn, time.monotonic())
            for i, standby in enumerate(standbys):
                with standby.connect() as conn:
                    state = replica_state(conn, lsn)
                seconds = positions.lag_seconds(state, time.monotonic()) or 0.0
                samples[i].append((time.monotonic() - t0, state["lag_bytes"], seconds))
            stop.wait(every)

    with primary.connect() as conn:
        start_lsn = primary_wal_lsn(conn)
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        build(primary_url, vectors, dims, np.random.default_rng(7), neighbours=0)
        swapped = time.monotonic() - t0
        with primary.connect() as conn:
            end_lsn = primary_wal_lsn(conn)
            run_id = conn.execute(sa.text("SELECT id FROM model_runs WHERE kind = 'songs' AND status = 'serving'")
                                  ).scalar()
            wal = conn.execute(sa.text("SELECT pg_wal_lsn_diff(CAST(:b AS pg_lsn), CAST(:a AS pg_lsn))::bigint"),
                               {"a": start_lsn, "b": end_lsn}).scalar()
        serving_at = []
        for standby in standbys:  # when each standby answers with the new run
            while True:
                with standby.connect() as conn:
                    if conn.execute(sa.text("SELECT run_id FROM song_vectors LIMIT 1")).scalar() == run_id:
                        break
                time.sleep(0.05)
            serving_at.append(time.monotonic() - t0 - swapped)
    finally:
        stop.set()
        sampler.join()
    return {"wal_bytes": wal, "build_s": swapped, "serving_after_swap_s": serving_at,
            "max_lag_bytes": [max(b for _, b, _ in s) for s in samples],
            "max_lag_s": [max(x for _, _, x in s) for s in samples],
            "mean_lag_bytes": [statistics.mean(b for _, b, _ in s) for s in samples], "samples": len(samples[0])}


def main() -> None:
    """Start the servers, load and train, measure, print Markdown tables, stop everything."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    ap.add_argument("--threads", type=int, default=8, help="client threads")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per configuration and round")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of requests before each measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--vectors", type=int, default=100_000, help="synthetic song vectors in the swapped run")
    ap.add_argument("--sample", type=float, default=0.2, help="seconds between lag samples")
    ap.add_argument("--epochs", type=int, default=5, help="song2vec epochs for the served model")
    args = ap.parse_args()

    from marconi.importers.playlists import import_playlists
    from marconi.training.song2vec import train_songs

    config = from_env()
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="marconi-bench-replicas-"))
    root.chmod(0o755)
    started: list[Path] = []
    try:
        pgdata, primary_url = start_cluster(bindir, root / "primary", "marconi", settings=FAST)
        started.append(pgdata)
        standby_urls = []
        for i in (1, 2):
            standby_pgdata, url = start_standby(bindir, root / "primary", root / f"standby{i}", "marconi",
                                                f"bench_standby{i}")
            started.append(standby_pgdata)
            standby_urls.append(url)
        primary = make_engine(config, url=primary_url)
        migrate.upgrade(primary)
        t0 = time.time()
        import_playlists(primary, config.require_data_dir() / "playlists" / "yes_small", "yes", progress=False)
        train_songs(primary, progress=False, config=config, epochs=args.epochs)
        dims = served_vector_size(primary)
        print(f"primary loaded and trained in {time.time() - t0:.0f}s; served song vectors: {dims} dimensions",
              flush=True)
        seeds = seeds_pool(primary)
        rows = throughput(primary_url, standby_urls, seeds, args)
        lag = replay_lag(primary_url, standby_urls, args.vectors, dims, args.sample)
        primary.dispose()
    finally:
        for pgdata in reversed(started):
            stop_cluster(bindir, pgdata)
        shutil.rmtree(root, ignore_errors=True)

    print(f"\nmachine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores (shared with other work: "
          f"load average {os.getloadavg()[0]:.1f} at the end); command: {' '.join(sys.argv)}")
    print(f"gunicorn {args.workers} workers (gevent), {args.threads} client threads, {args.seconds:.0f}s per "
          f"configuration, {args.rounds} rounds")
    print("\n| standbys | radio req/s (mean of rounds) | each round | p50 ms | p95 ms | errors | radio kNN scans: "
          "primary / standby 1 / standby 2 |")
    print("|---|---|---|---|---|---|---|")
    for n in range(len(standby_urls) + 1):
        mine = [r for r in rows if r["standbys"] == n]
        shares = np.mean([r["share"] for r in mine], axis=0)
        each = ", ".join(f"{r['rps']:.1f}" for r in mine)
        print(f"| {n} | {statistics.mean(r['rps'] for r in mine):.1f} | {each} | "
              f"{statistics.median(r['p50'] for r in mine):.1f} | "
              f"{statistics.median(r['p95'] for r in mine):.1f} | {sum(r['errors'] for r in mine)} | "
              + " / ".join(f"{s:.0%}" for s in shares) + " |")
    print(f"\nswap of {args.vectors:,} synthetic song vectors ({dims} dimensions + 1, GiST and HNSW indexes): "
          f"{lag['wal_bytes'] / 2**20:.0f} MiB of WAL, built and swapped in {lag['build_s']:.1f}s; "
          f"{lag['samples']} lag samples per standby every {args.sample}s")
    print("\n| standby | max lag (MiB) | mean lag (MiB) | max lag (s) | serves the new run after the swap (s) |")
    print("|---|---|---|---|---|")
    for i in range(len(standby_urls)):
        print(f"| {i + 1} | {lag['max_lag_bytes'][i] / 2**20:.1f} | {lag['mean_lag_bytes'][i] / 2**20:.2f} | "
              f"{lag['max_lag_s'][i]:.2f} | {lag['serving_after_swap_s'][i]:.2f} |")


def served_vector_size(primary: sa.Engine) -> int:
    """The served song run's vector size (its stored dimensions less the inner-product coordinate)."""
    with primary.connect() as conn:
        return conn.execute(sa.text("SELECT (params->>'vector_size')::int FROM model_runs "
                                    "WHERE kind = 'songs' AND status = 'serving'")).scalar()


if __name__ == "__main__":
    main()
