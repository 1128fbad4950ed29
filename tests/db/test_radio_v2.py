"""Radio v2 (migration 0010): exclude, reasons, the varied default, song_neighbours swapped with its run, downgrade."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import sqlalchemy as sa
from synthetic_playlists import synthetic_playlists

from marconi import runs
from marconi.db import make_engine, migrate
from marconi.importers.playlists import import_playlists
from marconi.recommenders.request import RadioRequest
from marconi.recommenders.song2vec import radio
from marconi.training.song2vec import SongParams, train_songs, vector_rows


def _seeds(conn, n: int, offset: int = 0) -> list[str]:
    return conn.execute(sa.text("SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id "
                                "ORDER BY t.id LIMIT :n OFFSET :o"), {"n": n, "o": offset}).scalars().all()


def test_exclude_leaves_out_songs_and_artists_in_any_case(trained_engine):
    with trained_engine.connect() as conn:
        seed = _seeds(conn, 1, offset=60)
        plain = radio(conn, RadioRequest(seeds=tuple(seed), size=20), "cube")["playlist"]
        song, artist = plain[0]["key"], plain[1]["artist"]
        steered = radio(conn, RadioRequest(seeds=tuple(seed), size=20, exclude=(song, artist.upper() + " ")),
                        "cube")
    keys = [p["key"] for p in steered["playlist"]]
    assert len(keys) == 20 and song not in keys
    assert artist.lower() not in {p["artist"].lower() for p in steered["playlist"]}
    assert steered["exclude"] == [song, artist.upper()]
    # what was not excluded keeps its order
    kept = [p["key"] for p in plain if p["key"] != song and p["artist"].lower() != artist.lower()]
    assert keys[: len(kept)] == kept


def test_every_song_has_a_short_reason_naming_a_seed(trained_engine):
    with trained_engine.connect() as conn:
        seeds = _seeds(conn, 2, offset=100)
        titles = dict(conn.execute(sa.text("SELECT key, title FROM tracks WHERE key = ANY(:s)"), {"s": seeds}).all())
        rows = conn.execute(sa.text("SELECT key, reason FROM radio(:s, 40)"), {"s": seeds}).all()
    assert len(rows) == 40
    kinds = Counter()
    for row in rows:
        kind, _, title = row.reason.partition(" with ") if row.reason.startswith("often") else \
            row.reason.partition(" to ")
        assert kind in ("often played", "close"), row.reason
        assert title in titles.values(), row.reason
        kinds[kind] += 1
    assert kinds["often played"] > 0  # the co-occurrence side speaks for some of them


def _tops(conn, seeds: list[str]) -> Counter:
    counts: Counter = Counter()
    for s in seeds:
        counts.update(conn.execute(sa.text("SELECT key FROM radio(:s, 10, exact => true)"), {"s": [s]}).scalars())
    return counts


def _ip_tops(conn, seeds: list[str]) -> Counter:
    """The top 10s of the scoring before v2 (0006: song2vec ip alone, no blend, no exposure), in numpy from the
    stored vectors; the next test checks that the same arithmetic reproduces radio()'s scores."""
    from marconi.db.cube import from_cube

    rows = conn.execute(sa.text("SELECT t.key, sv.vec::text, sv.qvec::text FROM song_vectors sv "
                                "JOIN tracks t ON t.id = sv.track_id")).all()
    keys = [r[0] for r in rows]
    items = np.vstack([from_cube(r[1]) for r in rows])
    query = {r[0]: np.concatenate([from_cube(r[2]), [0.0]]) for r in rows}
    counts: Counter = Counter()
    for s in seeds:
        score = items @ query[s]
        score[keys.index(s)] = -np.inf
        counts.update(keys[i] for i in np.argsort(-score, kind="stable")[:10])
    return counts


def test_default_is_more_varied_than_the_scoring_before_it(trained_engine):
    """The old scoring is the same run's song2vec ip alone (what 0006 ranked by), computed without writing to the
    shared database (a rolled-back UPDATE still leaves entries in its HNSW index, and other tests' answers move)."""
    with trained_engine.connect() as conn:
        seeds = _seeds(conn, 300)
        default = _tops(conn, seeds)
        before = _ip_tops(conn, seeds)
    assert len(default) > 1.3 * len(before)  # more different songs across the 300 radios
    assert max(default.values()) < 0.8 * max(before.values())  # the most frequent song opens fewer of them


def test_sql_radio_matches_the_v2_score_computed_in_numpy(trained_engine):
    """Score = ip + blend · ln(0.001 + Σ neighbour weights) − exposure, checked against the stored data."""
    from marconi.db.cube import from_cube

    with trained_engine.connect() as conn:
        seeds = _seeds(conn, 2, offset=200)
        run = conn.execute(sa.text("SELECT id, metrics FROM model_runs WHERE kind = 'songs' AND status = 'serving'"
                                   )).one()
        rows = conn.execute(sa.text("SELECT t.key, sv.track_id, sv.vec::text, sv.qvec::text, sv.exposure "
                                    "FROM song_vectors sv JOIN tracks t ON t.id = sv.track_id")).all()
        weights = dict(conn.execute(sa.text(
            "SELECT sn.neighbour_id, sum(sn.weight) FROM song_neighbours sn JOIN tracks t ON t.id = sn.track_id "
            "WHERE t.key = ANY(:s) GROUP BY 1"), {"s": seeds}).all())
        sql = conn.execute(sa.text("SELECT key, score FROM radio(:s, 20, exact => true)"), {"s": seeds}).all()
    items = np.vstack([from_cube(r[2]) for r in rows])
    q = np.sum([from_cube(r[3]) for r in rows if r[0] in seeds], axis=0)
    q = np.concatenate([q, [0.0]])
    blend = run.metrics["radio"]["blend"]
    cooc = np.array([weights.get(r[1], 0.0) for r in rows])
    score = items @ q / np.linalg.norm(q) + blend * np.log(0.001 + cooc) - np.array([r[4] for r in rows])
    by_key = {r[0]: float(x) for r, x in zip(rows, score, strict=True)}
    order = [k for k in sorted(by_key, key=by_key.get, reverse=True) if k not in seeds][:20]
    assert [r.key for r in sql] == order
    assert np.allclose([r.score for r in sql], [by_key[k] for k in order], atol=1e-4)


@pytest.fixture(scope="module")
def small_engine(new_database, base_config, tmp_path_factory):
    eng = make_engine(base_config, url=new_database())
    root = tmp_path_factory.mktemp("v2") / "synth"
    synthetic_playlists(root)
    import_playlists(eng, root, progress=False)
    yield eng
    eng.dispose()


def test_neighbours_are_swapped_in_with_their_run(small_engine):
    first = train_songs(small_engine, progress=False, epochs=2, min_count=1, workers=1, vector_size=8)
    second = train_songs(small_engine, progress=False, epochs=2, min_count=1, workers=1, vector_size=12,
                         neighbours=5)
    with small_engine.connect() as conn:
        per_run = dict(conn.execute(sa.text("SELECT run_id, count(*) FROM song_neighbours GROUP BY 1")).all())
        most = conn.execute(sa.text("SELECT max(c) FROM (SELECT count(*) c FROM song_neighbours GROUP BY track_id) x"
                                    )).scalar()
        staging = conn.execute(sa.text("SELECT to_regclass('song_neighbours_staging')")).scalar()
        reader = conn.execute(sa.text("SELECT has_table_privilege('marconi_reader', 'song_neighbours', 'SELECT')"
                                      )).scalar()
        run_ids = conn.execute(sa.text("SELECT DISTINCT run_id FROM radio(ARRAY['synth:1', 'synth:9'], 10)")
                               ).scalars().all()
    assert list(per_run) == [second["run_id"]] and first["run_id"] != second["run_id"]
    assert most == 5 and staging is None and reader
    assert run_ids == [second["run_id"]]
    assert second["radio"]["blend"] == SongParams().blend and second["radio"]["neighbours"] == per_run[second["run_id"]]


def test_a_run_without_neighbours_serves_an_empty_table_and_plain_scores(small_engine):
    """A run that stages only its vectors (older builders, benchmarks) still publishes; radio uses vectors alone."""
    with small_engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM tracks ORDER BY id")).scalars().all()
    rng = np.random.default_rng(0)
    qv = rng.normal(size=(len(ids), 6))
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    out = rng.normal(size=(len(ids), 6))
    norms = np.linalg.norm(out, axis=1)
    iv = np.hstack([out, np.sqrt(norms.max() ** 2 - norms ** 2)[:, None]])
    with runs.build(small_engine, "songs", "random", {}, 7) as run:
        hnsw = run.has_pgvector()
        cols = ["track_id", "run_id", "vec", "qvec", "hub"] + (["hvec"] if hnsw else [])
        n = run.stage(cols, vector_rows(run.id, ids, qv, iv, np.zeros(len(ids)), hnsw), 6 if hnsw else None)
        run.publish(n, {"item_norm": float(norms.max())})
    with small_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM song_neighbours")).scalar() == 0
        rows = conn.execute(sa.text("SELECT key, reason, run_id FROM radio(ARRAY['synth:3'], 5)")).all()
    assert len(rows) == 5 and {r.run_id for r in rows} == {run.id}
    assert all(r.reason == "close to song 3" for r in rows)


def test_downgrade_restores_the_0006_radio_and_upgrade_returns(new_database, base_config):
    eng = make_engine(base_config, url=new_database())
    try:
        migrate.downgrade(eng, "0009")
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT to_regclass('song_neighbours')")).scalar() is None
            args = conn.execute(sa.text("SELECT pg_get_function_identity_arguments(p.oid) FROM pg_proc p "
                                        "WHERE proname = 'radio'")).scalars().all()
            exposure = conn.execute(sa.text("SELECT 1 FROM information_schema.columns WHERE table_name = "
                                            "'song_vectors' AND column_name = 'exposure'")).first()
        assert len(args) == 1 and "exclude" not in args[0] and "variety" in args[0] and exposure is None
        migrate.upgrade(eng)
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM radio(ARRAY['nope'], 5)")).scalar() == 0
            assert conn.execute(sa.text("SELECT has_function_privilege('marconi_reader', "
                                        "'radio(text[], integer, integer, double precision, boolean, integer, "
                                        "text[], text[], text[], text)', 'EXECUTE')")).scalar()
    finally:
        eng.dispose()
