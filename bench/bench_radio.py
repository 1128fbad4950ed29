"""Benchmark the radio kNN question at 10k / 100k / 1M synthetic, clustered song vectors.

For each size it builds a database with that many songs through the real write path (a model run: staging table,
GiST, HNSW and, from marconi.db.ann.IVF_MIN_ROWS songs, IVFFlat indexes, swap), or with ``--reuse`` takes the one
an earlier run built (same seed, so the same vectors), then measures per query of 1-3 seeds (p50/p95, ms):

* cube GiST: ``radio_candidates(seeds, k, exact => true)``, ORDER BY vec <-> q LIMIT k on the cube column (exact)
* pgvector HNSW: ``radio_candidates(seeds, k, ef_search => 100 | 400)`` on the pgvector column (approximate)
* ``--ann-ef``: the radio's own kNN step, ``radio_candidates_near(radio_query_vector(seeds), k, false, ef)``, which
  reads the IVFFlat index when the run has one (probes = ef / 20), else HNSW; and the HNSW index alone at the same
  ef, side by side; recall@10 and times reported for 1-seed and 3-seed queries apart
* ``--inside``: inside PostgreSQL (EXPLAIN ANALYZE's Execution Time), query by query side by side (which goes first
  alternates), the kNN step and radio() of an earlier migration (``--before``, loaded as pg_temp functions) against
  the current ones
* numpy brute force: the exact answer in process (the reference for recall@10)
* the whole radio as the API asks it (one statement: seeds, candidates, neighbours, scores, filters), in process;
  each song has ``--neighbours`` synthetic co-occurring songs (radio v2 blends them in)
* the HTTP radio endpoint under gunicorn, sequential requests

The vectors (``synthetic``): 1 cluster per 1,000 songs; a song's unit input vector is its cluster centre (64
standard normal coordinates) plus 0.5 x standard normal noise, normalised; its output vector is the centre times a
lognormal(0, 0.3) popularity factor plus the same noise, augmented with sqrt(M^2 - |v|^2) for the cube column.

Run by hand (results go to docs/benchmarks.md):
    .venv/bin/python bench/bench_radio.py --sizes 10000 100000 1000000 --queries 200
    .venv/bin/python bench/bench_radio.py --sizes 1000000 --reuse --queries 60 --no-methods --ann-ef 100 200 400 \
        --inside --no-radio --no-http
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import requests
import sqlalchemy as sa

from marconi import runs
from marconi.config import from_env
from marconi.db import database_url, make_engine, migrate, with_database
from marconi.db.tracks import Track, upsert_tracks
from marconi.recommenders.request import RadioRequest
from marconi.recommenders.song2vec import radio
from marconi.serving import background_gunicorn
from marconi.training.song2vec import hub_scores, vector_rows

CANDIDATES = sa.text("SELECT track_id FROM radio_candidates(:seeds, :k, :exact, :ef)")
NEAR = sa.text("SELECT track_id FROM radio_candidates_near(radio_query_vector(:seeds), :k, false, :ef)")
HNSW_ONLY = sa.text("SELECT sv.track_id FROM song_vectors sv "
                    "ORDER BY sv.hvec <#> marconi_cube_to_vector(radio_query_vector(:seeds)) LIMIT :k")


def synthetic(n: int, dims: int, clusters: int, rng) -> tuple[np.ndarray, np.ndarray, float]:
    """Clustered input (query-side, unit) and output (item-side, MIPS-augmented) vectors like song2vec's."""
    centres = rng.normal(size=(clusters, dims))
    which = rng.integers(0, clusters, size=n)
    inp = centres[which] + 0.5 * rng.normal(size=(n, dims))
    inp /= np.linalg.norm(inp, axis=1, keepdims=True)
    out = centres[which] * rng.lognormal(0, 0.3, size=(n, 1)) + 0.5 * rng.normal(size=(n, dims))
    norms = np.linalg.norm(out, axis=1)
    m = float(norms.max())
    return inp, np.hstack([out, np.sqrt(m * m - norms * norms)[:, None]]), m


def pct(xs, p):
    """Percentile of a list."""
    return float(np.percentile(np.asarray(xs), p))


def neighbour_rows(run_id: int, ids: list[int], per_song: int, rng):
    """Synthetic song_neighbours rows: ``per_song`` random other songs each, weights summing to 1 per song."""
    n = len(ids)
    for i, tid in enumerate(ids):
        others = rng.choice(n, size=min(per_song, n - 1), replace=False)
        weights = rng.dirichlet(np.ones(len(others)))
        for j, w in zip(others, weights, strict=True):
            if j != i:
                yield [run_id, tid, ids[j], float(w)]


def build(url: str, n: int, dims: int, rng, neighbours: int = 100) -> tuple[sa.Engine, np.ndarray, np.ndarray,
                                                                        list[int], list[str]]:
    """Create tracks and a serving song model of n synthetic vectors (and ``neighbours`` co-occurring songs per
    song, as radio v2 blends them in; 0: none) in the database at url."""
    eng = make_engine(from_env(), url=url)
    migrate.upgrade(eng)
    keys = [f"bench:{i}" for i in range(n)]
    t0 = time.time()
    with eng.begin() as conn:
        ids_by_key = {}
        for i in range(0, n, 100_000):
            ids_by_key.update(upsert_tracks(conn, [Track(k, f"song {k}", f"artist {j % 5000}")
                                                   for j, k in enumerate(keys[i:i + 100_000], start=i)]))
    ids = [ids_by_key[k] for k in keys]
    qv, iv, m = synthetic(n, dims, max(10, n // 1000), rng)
    t1 = time.time()
    with runs.build(eng, "songs", "synthetic", {"n": n, "vector_size": dims}, dims + 1) as run:
        hnsw = run.has_pgvector()
        exposure = np.where(rng.random(n) < 0.02, rng.random(n), 0.0)  # a few capped songs, as trained
        cols = ["track_id", "run_id", "vec", "qvec", "hub", "exposure"] + (["hvec"] if hnsw else [])
        written = run.stage(cols, vector_rows(run.id, ids, qv, iv, hub_scores(qv, iv[:, :dims]), hnsw, exposure),
                            hnsw_dims=dims if hnsw else None)
        if neighbours:
            run.stage(["run_id", "track_id", "neighbour_id", "weight"], neighbour_rows(run.id, ids, neighbours, rng),
                      table="song_neighbours")
        run.publish(written, {"item_norm": m, "radio": {"blend": 0.5 if neighbours else 0.0}})
    print(f"  n={n}: tracks {t1 - t0:.1f}s, vectors+GiST+HNSW+swap {time.time() - t1:.1f}s", flush=True)
    return eng, qv, iv, ids, keys


def open_size(base_url: str, n: int, dims: int, rng, neighbours: int, reuse: bool):
    """The bench database of n songs: built afresh, or (``reuse``) the one an earlier run built, upgraded to the
    current schema, with its vectors drawn again from the same seed. Returns (engine, url, qv, iv, ids, keys)."""
    name = f"marconi_bench_{n}"
    url = with_database(base_url, name)
    if reuse:
        eng = make_engine(from_env(), url=url)
        migrate.upgrade(eng)
        qv, iv, _ = synthetic(n, dims, max(10, n // 1000), rng)  # build() draws these first from the same seed
        keys = [f"bench:{i}" for i in range(n)]
        with eng.connect() as conn:
            by_key = dict(conn.execute(sa.text("SELECT key, id FROM tracks WHERE key LIKE 'bench:%'")).all())
        return eng, url, qv, iv, [by_key[k] for k in keys], keys
    admin = sa.create_engine(base_url.replace("postgresql://", "postgresql+psycopg2://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    eng, qv, iv, ids, keys = build(url, n, dims, rng, neighbours)
    return eng, url, qv, iv, ids, keys


def exact_top(items: np.ndarray, q: np.ndarray, ids: list[int], k: int) -> set[int]:
    """The k track ids with the largest inner product with q (numpy brute force)."""
    return {ids[i] for i in np.argpartition(-(items @ q), k)[:k]}


def bench_ann(conn: sa.Connection, qv, items, ids, keys, queries: int, k: int, efs, seed: int) -> dict:
    """The radio's kNN step (radio_candidates_near) and the HNSW index alone, query by query side by side, for
    ``queries`` 1-seed and as many 3-seed queries at each ef: p50/p95 ms and recall@k against numpy."""
    rng = np.random.default_rng(seed)
    res = {}
    for n_seeds in (1, 3):
        picks = [rng.choice(len(keys), size=n_seeds, replace=False) for _ in range(queries)]
        exact = [exact_top(items, qv[p].sum(axis=0).astype(np.float32), ids, k) for p in picks]
        for ef in efs:
            times = {"ann": [], "hnsw": []}
            recall = {"ann": [], "hnsw": []}
            for i, (p, ex) in enumerate(zip(picks, exact, strict=True)):
                params = {"seeds": [keys[j] for j in p], "k": k, "ef": ef}
                for name, stmt in (("ann", NEAR), ("hnsw", HNSW_ONLY)):
                    conn.execute(sa.text(f"SET hnsw.ef_search = {int(max(ef, k))}"))
                    t0 = time.perf_counter()
                    got = conn.execute(stmt, params).scalars().all()
                    if i >= 3:  # the first few warm the caches
                        times[name].append((time.perf_counter() - t0) * 1000)
                    recall[name].append(len(set(got) & ex) / k)
            for name in times:
                tag = f"{name}{ef}_{n_seeds}seed"
                res[f"{tag}_p50_ms"], res[f"{tag}_p95_ms"] = pct(times[name], 50), pct(times[name], 95)
                res[f"{tag}_recall@{k}"] = float(np.mean(recall[name]))
    return res


def migration(file_name: str):
    """An earlier revision's module (revision files are not importable by name)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "migrations" / "versions" / file_name
    spec = importlib.util.spec_from_file_location(file_name[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def server_ms(cur, sql: str, params: dict) -> float:
    """Execution Time of ``sql`` inside PostgreSQL (EXPLAIN ANALYZE, TIMING OFF), in ms."""
    cur.execute("EXPLAIN (ANALYZE, TIMING OFF) " + sql, params)
    return float(next(r[0] for r in cur.fetchall() if r[0].startswith("Execution Time")).split()[2])


def bench_inside_vs(url: str, n: int, queries: int, efs, seed: int, before: str = "0013_radio_fast.py") -> dict:
    """Inside PostgreSQL, query by query side by side: the kNN step and radio() of migration ``before`` (loaded as
    pg_temp copies) against the current ones, for 1- and 3-seed radios: p50/p95 ms of EXPLAIN ANALYZE's Execution
    Time (which includes the planning radio() does inside, for itself and the functions it calls)."""
    import psycopg2

    old = migration(before)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(old.CANDIDATES_NEAR.replace("FUNCTION radio_candidates_near(", "FUNCTION pg_temp.near_before(", 1))
    cur.execute(old.RADIO.replace("FUNCTION radio(", "FUNCTION pg_temp.radio_before(", 1)
                .replace("radio_candidates_near(", "pg_temp.near_before(", 1))
    rng = np.random.default_rng(seed)
    res = {}
    for n_seeds in (1, 3):
        picks = [[f"bench:{i}" for i in rng.choice(n, n_seeds, replace=False)] for _ in range(queries)]
        asks = [(f"knn_ef{ef}", f"SELECT * FROM {{fn}}(radio_query_vector(%(s)s), 10, false, {ef})",
                 ("pg_temp.near_before", "radio_candidates_near")) for ef in efs]
        asks.append(("radio", "SELECT * FROM {fn}(%(s)s, 25)", ("pg_temp.radio_before", "radio")))
        for tag, sql, (old_fn, new_fn) in asks:
            times = {"before": [], "now": []}
            for i, s in enumerate(picks):
                pair = (("before", old_fn), ("now", new_fn))
                for name, fn in (pair if i % 2 else pair[::-1]):  # the first one reads the seeds' pages cold
                    ms = server_ms(cur, sql.format(fn=fn), {"s": s})
                    if i >= 3:
                        times[name].append(ms)
            for name, t in times.items():
                res[f"inside_{tag}_{n_seeds}seed_{name}_p50_ms"] = pct(t, 50)
                res[f"inside_{tag}_{n_seeds}seed_{name}_p95_ms"] = pct(t, 95)
    conn.close()
    return res


def bench_size(base_url: str, n: int, dims: int, queries: int, k: int, http: bool, neighbours: int,
               reuse: bool = False, methods: bool = True, whole_radio: bool = True, ann_efs=(),
               inside: bool = False, before: str = "0013_radio_fast.py") -> dict:
    """Measure one size; return its figures."""
    rng = np.random.default_rng(n)
    eng, url, qv, iv, ids, keys = open_size(base_url, n, dims, rng, neighbours, reuse)
    rng = np.random.default_rng(n + 1)
    seeds = [rng.choice(n, size=rng.integers(1, 4), replace=False) for _ in range(queries)]
    qs = [np.concatenate([qv[s].sum(axis=0), [0.0]]) for s in seeds]
    res = {"n": n, "dims": dims + 1, "k": k, "queries": queries, "neighbours": neighbours}
    # exact reference, numpy brute force (Euclidean on the augmented vectors == maximum inner product)
    t, exact_ids = [], []
    ivf = iv.astype(np.float32)
    for q in qs:
        t0 = time.perf_counter()
        d = ((ivf - q.astype(np.float32)) ** 2).sum(axis=1)
        top = np.argpartition(d, k)[:k]
        exact_ids.append({ids[i] for i in top})
        t.append((time.perf_counter() - t0) * 1000)
    res["numpy_p50_ms"], res["numpy_p95_ms"] = pct(t, 50), pct(t, 95)
    with eng.connect() as conn:
        for method_name, exact, ef in (("cube", True, 0), ("hnsw100", False, 100), ("hnsw400", False, 400)):
            if not methods:
                break
            params = [{"seeds": [keys[i] for i in s], "k": k, "exact": exact, "ef": ef} for s in seeds]
            for p in params[:5]:
                conn.execute(CANDIDATES, p)  # warm the cache
            t, rec = [], []
            for p, ex in zip(params, exact_ids, strict=True):
                t0 = time.perf_counter()
                got = conn.execute(CANDIDATES, p).scalars().all()
                t.append((time.perf_counter() - t0) * 1000)
                rec.append(len(set(got) & ex) / k)
            res[f"{method_name}_p50_ms"], res[f"{method_name}_p95_ms"] = pct(t, 50), pct(t, 95)
            res[f"{method_name}_recall@{k}"] = float(np.mean(rec))
    if ann_efs:
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            res.update(bench_ann(conn, qv, iv[:, :dims].astype(np.float32), ids, keys, queries, k, ann_efs, n + 2))
    if inside:
        res.update(bench_inside_vs(url, n, queries, ann_efs or (400,), n + 3, before))
    if whole_radio:
        with eng.connect() as conn:
            t = []
            for s in seeds:
                t0 = time.perf_counter()
                radio(conn, RadioRequest(seeds=tuple(keys[i] for i in s), size=25))
                t.append((time.perf_counter() - t0) * 1000)
        res["radio_p50_ms"], res["radio_p95_ms"] = pct(t, 50), pct(t, 95)
    if http:
        res.update(bench_http(url, keys, seeds))
    print(json.dumps(res), flush=True)
    eng.dispose()
    return res


def bench_http(url: str, keys: list[str], seeds) -> dict:
    """Run gunicorn against ``url`` and time POST /api/radio."""
    with background_gunicorn(url) as base:
        sess = requests.Session()
        for s in seeds[:5]:
            sess.post(base + "/api/radio", json={"seeds": [keys[i] for i in s], "size": 25})
        t = []
        for s in seeds:
            t0 = time.perf_counter()
            r = sess.post(base + "/api/radio", json={"seeds": [keys[i] for i in s], "size": 25})
            t.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
    return {"http_p50_ms": pct(t, 50), "http_p95_ms": pct(t, 95)}


def main() -> None:
    """Parse arguments, run the sizes, print Markdown tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dims", type=int, default=64, help="song2vec dimensions (one more is stored)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--neighbours", type=int, default=100, help="co-occurring songs stored per song (0: none)")
    ap.add_argument("--reuse", action="store_true", help="measure the databases an earlier run built")
    ap.add_argument("--no-methods", action="store_true", help="skip the cube / HNSW 100 / HNSW 400 comparison")
    ap.add_argument("--no-radio", action="store_true", help="skip the whole radio in process")
    ap.add_argument("--inside", action="store_true",
                    help="times inside PostgreSQL: the --before kNN step and radio() against the current ones")
    ap.add_argument("--before", default="0013_radio_fast.py",
                    help="the migration file whose radio() --inside compares with (default: %(default)s)")
    ap.add_argument("--ann-ef", type=int, nargs="*", default=[],
                    help="ef_search values for the radio's kNN step against HNSW alone, by seed count")
    args = ap.parse_args()
    base = with_database(database_url(from_env()), "postgres")
    rows = [bench_size(base, n, args.dims, args.queries, args.k, not args.no_http, args.neighbours, args.reuse,
                       not args.no_methods, not args.no_radio, args.ann_ef, args.inside, args.before)
            for n in args.sizes]
    print(f"\nmachine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; command: {' '.join(sys.argv)}")
    if not args.no_methods:
        print("| songs | cube GiST p50/p95 ms | HNSW ef=100 p50/p95 ms (recall@10) | HNSW ef=400 p50/p95 ms "
              "(recall@10) | numpy p50 ms | radio p50 ms | HTTP p50/p95 ms |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            http = f"{r['http_p50_ms']:.1f} / {r['http_p95_ms']:.1f}" if "http_p50_ms" in r else "-"
            whole = f"{r['radio_p50_ms']:.1f}" if "radio_p50_ms" in r else "-"
            print(f"| {r['n']:,} | {r['cube_p50_ms']:.1f} / {r['cube_p95_ms']:.1f} | {r['hnsw100_p50_ms']:.2f} / "
                  f"{r['hnsw100_p95_ms']:.2f} ({r['hnsw100_recall@10']:.3f}) | {r['hnsw400_p50_ms']:.2f} / "
                  f"{r['hnsw400_p95_ms']:.2f} ({r['hnsw400_recall@10']:.3f}) | {r['numpy_p50_ms']:.1f} | "
                  f"{whole} | {http} |")
    if args.ann_ef:
        print(f"\n| songs | seeds | ef_search | radio kNN step p50 / p95 ms (recall@{args.k}) "
              f"| HNSW alone p50 / p95 ms (recall@{args.k}) |")
        print("|---|---|---|---|---|")
        for r in rows:
            for n_seeds in (1, 3):
                for ef in args.ann_ef:
                    cells = [f"{r[f'{m}{ef}_{n_seeds}seed_p50_ms']:.2f} / {r[f'{m}{ef}_{n_seeds}seed_p95_ms']:.2f} "
                             f"({r[f'{m}{ef}_{n_seeds}seed_recall@{args.k}']:.3f})" for m in ("ann", "hnsw")]
                    print(f"| {r['n']:,} | {n_seeds} | {ef} | {cells[0]} | {cells[1]} |")
    if args.inside:
        print(f"\n| songs | seeds | inside PostgreSQL | {args.before[:4]} p50 / p95 ms | now p50 / p95 ms |")
        print("|---|---|---|---|---|")
        for r in rows:
            for n_seeds in (1, 3):
                for tag in [f"knn_ef{ef}" for ef in (args.ann_ef or [400])] + ["radio"]:
                    cells = [f"{r[f'inside_{tag}_{n_seeds}seed_{v}_p50_ms']:.2f} / "
                             f"{r[f'inside_{tag}_{n_seeds}seed_{v}_p95_ms']:.2f}" for v in ("before", "now")]
                    print(f"| {r['n']:,} | {n_seeds} | {tag} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
