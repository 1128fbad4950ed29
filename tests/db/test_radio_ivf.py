"""A large catalogue's run also gets an IVFFlat (halfvec) index, radio_candidates_near reads through it, and
`marconi serve` warms the kNN indexes (marconi.db.ann, migration 0013). "Large" is lowered here to 1,000 songs."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from marconi import runs
from marconi.db import ann, make_engine
from marconi.db.tracks import Track, upsert_tracks
from marconi.training.song2vec import vector_rows

SONGS, DIMS = 3000, 8
NEAR = sa.text("SELECT track_id FROM radio_candidates_near(radio_query_vector(:seeds), 10, :exact, :ef)")


def _publish(engine, rng) -> int:
    """A serving song run of SONGS clustered synthetic songs; returns its id."""
    with engine.begin() as conn:
        ids = upsert_tracks(conn, [Track(f"ivf:{i}", f"song {i}", f"artist {i % 300}") for i in range(SONGS)])
    ids = [ids[f"ivf:{i}"] for i in range(SONGS)]
    centres = rng.normal(size=(30, DIMS))
    which = rng.integers(0, 30, size=SONGS)
    qv = centres[which] + 0.5 * rng.normal(size=(SONGS, DIMS))
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    out = centres[which] * rng.lognormal(0, 0.3, size=(SONGS, 1)) + 0.5 * rng.normal(size=(SONGS, DIMS))
    norms = np.linalg.norm(out, axis=1)
    iv = np.hstack([out, np.sqrt(norms.max() ** 2 - norms ** 2)[:, None]])
    with runs.build(engine, "songs", "synthetic", {}, DIMS + 1) as run:
        if not run.has_pgvector():
            pytest.skip("no pgvector: no approximate index at all")
        cols = ["track_id", "run_id", "vec", "qvec", "hub", "hvec"]
        n = run.stage(cols, vector_rows(run.id, ids, qv, iv, np.zeros(SONGS), True), DIMS)
        run.publish(n, {"item_norm": float(norms.max())})
    return run.id


@pytest.fixture(scope="module")
def ivf_engine(new_database, base_config):
    eng = make_engine(base_config, url=new_database())
    yield eng
    eng.dispose()


def _inner_plans(conn, statement: str, params: dict) -> str:
    """The plans of the statements run inside ``statement``'s functions (auto_explain, as notices)."""
    raw = conn.connection.dbapi_connection
    cur = raw.cursor()
    cur.execute("LOAD 'auto_explain'")
    for setting in ("auto_explain.log_min_duration = 0", "auto_explain.log_nested_statements = on",
                    "auto_explain.log_level = notice", "client_min_messages = notice"):
        cur.execute("SET LOCAL " + setting)
    del raw.notices[:]
    cur.execute(statement, params)
    return "".join(raw.notices)


def test_a_small_catalogue_has_hnsw_only(ivf_engine):
    _publish(ivf_engine, np.random.default_rng(1))
    with ivf_engine.connect() as conn:
        indexes = conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'song_vectors'")
                               ).scalars().all()
    assert "song_vectors_hvec_hnsw" in indexes and "song_vectors_hvec_ivf" not in indexes


def test_a_large_catalogue_reads_its_ivf_index_and_finds_the_exact_neighbours(ivf_engine, monkeypatch):
    monkeypatch.setattr(ann, "IVF_MIN_ROWS", 1000)
    rng = np.random.default_rng(2)
    run_id = _publish(ivf_engine, rng)
    with ivf_engine.connect() as conn:
        lists = conn.execute(sa.text("SELECT reloptions FROM pg_class WHERE relname = 'song_vectors_hvec_ivf'")
                             ).scalar()
        assert lists == [f"lists={ann.ivf_lists(SONGS)}"]
        for _ in range(10):  # 3 seeds far apart: the case an HNSW walk finds only part of
            seeds = [f"ivf:{i}" for i in rng.choice(SONGS, 3, replace=False)]
            ivf = conn.execute(NEAR, {"seeds": seeds, "exact": False, "ef": 400}).scalars().all()
            exact = conn.execute(NEAR, {"seeds": seeds, "exact": True, "ef": 400}).scalars().all()
            assert set(ivf) == set(exact)  # 10 probes of 3 lists: every list, so exact
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # 3,000 songs: a scan would cost less
        plans = _inner_plans(conn, "SELECT * FROM radio_candidates_near(radio_query_vector(%(s)s), 10, false, 400)",
                             {"s": seeds})
        assert "Index Scan using song_vectors_hvec_ivf" in plans, plans
        served = conn.execute(sa.text("SELECT DISTINCT run_id FROM radio(:s, 25)"), {"s": seeds}).scalars().all()
        assert served == [run_id]
        # what `marconi serve` does first: both indexes are a few MB, so they fit in any shared_buffers
        warmed = ann.warm_song_indexes(conn)
        has_prewarm = conn.execute(sa.text("SELECT to_regproc('pg_prewarm') IS NOT NULL")).scalar()
    assert [w["index"] for w in warmed] == ["song_vectors_hvec_ivf", "song_vectors_hvec_hnsw"]
    assert all(w["loaded"] == has_prewarm for w in warmed)
