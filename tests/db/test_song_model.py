"""song2vec training, atomic swaps, and the kNN SQL using the GiST index."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import sqlalchemy as sa
from synthetic_playlists import synthetic_playlists

from marconi.db import make_engine
from marconi.importers.playlists import import_playlists
from marconi.recommenders.request import RadioRequest
from marconi.recommenders.song2vec import radio
from marconi.recommenders.steps import NeedsRetraining
from marconi.training.song2vec import SongParams, filter_playlist, hub_scores, train_songs


def test_filters_drop_long_and_single_artist_playlists():
    p = SongParams(max_playlist_length=4, max_artist_share=0.5)
    assert filter_playlist([1, 2, 3], ["a", "b", "c"], p)
    assert not filter_playlist([1, 2, 3, 4, 5], ["a", "b", "c", "d", "e"], p)
    assert not filter_playlist([1, 2, 3], ["a", "a", "b"], p)
    assert filter_playlist([1, 2, 3, 4], ["a", "a", "b", "c"], p)
    assert not filter_playlist([1], ["a"], p)


def test_params_guard_cube_dimension_limit():
    with pytest.raises(ValueError, match="cube"):
        SongParams(vector_size=100, scoring="ip").validate()
    SongParams(vector_size=100, scoring="cosine").validate()


def test_trained_model_serves_and_vectors_have_run_dims(trained_engine):
    with trained_engine.connect() as conn:
        run = conn.execute(sa.text(
            "SELECT id, dims, n_vectors, params FROM model_runs WHERE kind='songs' AND status='serving'")).one()
        n, dims = conn.execute(sa.text("SELECT count(*), min(cube_dim(vec)) FROM song_vectors")).one()
        max_dims = conn.execute(sa.text("SELECT max(cube_dim(vec)) FROM song_vectors")).scalar()
        ids = conn.execute(sa.text("SELECT DISTINCT run_id FROM song_vectors")).scalars().all()
    assert n == run.n_vectors > 3000
    assert dims == max_dims == run.dims == run.params["vector_size"] + 1
    assert ids == [run.id]


def _reads(conn) -> dict:
    """Blocks read so far from each song_vectors index (after flushing the counters).

    pgvector does not count its scans in idx_scan, but its block reads count.
    """
    conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
    conn.commit()
    conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
    reads = dict(conn.execute(sa.text("SELECT indexrelname, idx_blks_hit + idx_blks_read FROM pg_statio_user_indexes "
                                      "WHERE relname = 'song_vectors'")).all())
    return reads


def test_radio_function_is_driven_by_the_indexes(trained_engine):
    """radio() asks its kNN question in a form the GiST index (exact) or the HNSW index answers, and only that one.

    On this small catalogue the planner may rightly prefer a sequential scan and a sort (exact, and as fast), so the
    test turns sequential scans off: what it checks is that the statements can use their index (a sort key the
    index cannot order by would leave it unread), as they will on a large catalogue (docs/benchmarks.md).
    """
    own = sa.create_engine(trained_engine.url.render_as_string(hide_password=False), poolclass=sa.pool.NullPool)
    with own.connect() as conn:  # a new session: its functions' plans are made with sequential scans off
        conn.execute(sa.text("SET enable_seqscan = off"))
        seed = conn.execute(sa.text("SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id "
                                    "ORDER BY t.id LIMIT 1")).scalar()
        indexes = ["song_vectors_vec_gist"]
        if conn.execute(sa.text("SELECT to_regclass('song_vectors_hvec_hnsw') IS NOT NULL")).scalar():
            indexes.append("song_vectors_hvec_hnsw")
        for index in indexes:
            before = _reads(conn)
            rows = conn.execute(sa.text("SELECT key FROM radio(:s, 10, exact => :e)"),
                                {"s": [seed], "e": index.endswith("gist")}).all()
            assert len(rows) == 10
            after = _reads(conn)
            assert after[index] - before[index] >= 10, index  # a search, not the metapage read while planning
            assert all(after[i] == before[i] for i in indexes if i != index)
    own.dispose()


def _reference_radio(conn, seeds, n, max_per_artist=None, variety=0.0):
    """The radio computed in numpy from all stored vectors: an independent check of the SQL definition."""
    from marconi.db.cube import from_cube

    rows = conn.execute(sa.text("SELECT t.key, t.artist, sv.vec::text, sv.qvec::text, sv.hub FROM song_vectors sv "
                                "JOIN tracks t ON t.id = sv.track_id")).all()
    norm = conn.execute(sa.text("SELECT (metrics->>'item_norm')::float8 FROM model_runs "
                                "WHERE kind = 'songs' AND status = 'serving'")).scalar()
    keys = [r[0] for r in rows]
    items = np.vstack([from_cube(r[2]) for r in rows])
    q = np.sum([from_cube(r[3]) for r in rows if r[0] in seeds], axis=0)
    q = np.concatenate([q, np.zeros(items.shape[1] - q.size)])
    qn = np.linalg.norm(q)
    d = np.linalg.norm(items - q, axis=1)
    score = (qn * qn + norm * norm - d * d) / (2 * qn) - variety * np.array([r[4] for r in rows])
    order = np.lexsort((d, -score))
    out, per_artist = [], {}
    for i in order:
        if keys[i] in seeds:
            continue
        artist = rows[i][1].strip().lower()
        if max_per_artist and artist and per_artist.get(artist, 0) >= max_per_artist:
            continue
        per_artist[artist] = per_artist.get(artist, 0) + 1
        out.append(keys[i])
        if len(out) == n:
            return out
    return out


@pytest.fixture(scope="module")
def vector_side_engine(new_database, base_config, tmp_path_factory):
    """A model of its own (400 synthetic songs) with the run's blend and exposure offsets switched off, so that
    radio() ranks by its vectors alone; the shared database is never written to (even a rolled-back UPDATE leaves
    entries in its HNSW index that move other tests' approximate answers)."""
    eng = make_engine(base_config, url=new_database())
    root = tmp_path_factory.mktemp("vector-side") / "synth"
    synthetic_playlists(root, n_songs=400, n_artists=40, n_playlists=3000)
    import_playlists(eng, root, progress=False)
    train_songs(eng, progress=False, epochs=2, min_count=1, workers=1, vector_size=16)
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE song_vectors SET exposure = 0"))
        conn.execute(sa.text("UPDATE model_runs SET metrics = metrics - 'radio' WHERE status = 'serving'"))
    yield eng
    eng.dispose()


@pytest.mark.parametrize("n_seeds, max_per_artist, variety", [(1, None, 0.0), (2, None, 0.0), (3, 1, 0.0),
                                                              (1, None, 0.5), (2, 2, 0.25)])
def test_sql_radio_matches_an_independent_numpy_radio(vector_side_engine, n_seeds, max_per_artist, variety):
    """The vector side of radio(): with the run's blend and exposure offsets switched off, the ranking is
    ip - variety * hub (tests/db/test_radio_v2.py checks the whole v2 score on the shared model)."""
    with vector_side_engine.connect() as conn:
        seeds = conn.execute(sa.text("SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id "
                                     "ORDER BY t.id LIMIT :n OFFSET 5"), {"n": n_seeds}).scalars().all()
        sql = conn.execute(sa.text("SELECT key FROM radio(:s, 20, :m, :v, exact => true)"),
                           {"s": seeds, "m": max_per_artist, "v": variety}).scalars().all()
        ref = _reference_radio(conn, set(seeds), 20, max_per_artist, variety)
    assert len(sql) == 20 and not set(seeds) & set(sql)
    # the SQL ranks the nearest candidates only, so with variety the far tail may differ: the top must agree
    agree = 20 if variety == 0 else 15
    assert sql[:agree] == ref[:agree]


def test_hub_scores_match_brute_force_and_find_a_planted_hub():
    rng = np.random.default_rng(3)
    common = np.zeros(16)
    common[0] = 1.0
    q = rng.normal(size=(300, 16)) + 2 * common  # queries lean one way, as song2vec's do
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    items = rng.normal(size=(300, 16)) / 4  # length about 1, random directions
    items[7] = common * 1.2  # about as long, but pointing where every query leans
    h = hub_scores(q, items, k=10, block=64)
    brute = np.sort(items @ q.T, axis=1)[:, -10:].mean(axis=1)
    assert np.allclose(h, brute)
    assert int(np.argmax(h)) == 7
    sampled = hub_scores(q, items, k=10, max_queries=100)
    assert int(np.argmax(sampled)) == 7 and sampled.shape == (300,)


def test_variety_spreads_radios_in_sql_and_api_alike(trained_engine):
    with trained_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM song_vectors WHERE hub IS NULL")).scalar() == 0
        seeds = conn.execute(sa.text(
            "SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id ORDER BY t.id LIMIT 60"
        )).scalars().all()

        def tops(variety):
            lists = [[p["key"] for p in radio(conn, RadioRequest(seeds=(s,), size=10, variety=variety),
                                              "cube")["playlist"]] for s in seeds]
            counts = {}
            for keys in lists:
                for k in keys:
                    counts[k] = counts.get(k, 0) + 1
            return lists, counts

        plain, plain_counts = tops(0.0)
        varied, varied_counts = tops(0.75)
        assert len(varied_counts) > len(plain_counts)  # more different songs across the 60 radios
        assert max(varied_counts.values()) < max(plain_counts.values())  # the most frequent song turns up less
        sql = conn.execute(sa.text("SELECT key FROM radio(:s, 10, NULL, 0.75)"), {"s": [seeds[0]]}).scalars().all()
        assert sql == varied[0]
        assert conn.execute(sa.text("SELECT key FROM radio(:s, 10, NULL, 0)"), {"s": [seeds[0]]}).scalars().all() \
            == plain[0]


def test_a_model_without_hub_scores_refuses_variety_only(new_database, base_config, tmp_path):
    """A model trained before hub scores existed (hub NULL): variety is refused with what to do, variety 0 still
    works. Its own database: the shared one must not be written to, not even by a rolled-back UPDATE."""
    eng = make_engine(base_config, url=new_database())
    synthetic_playlists(tmp_path / "synth")
    import_playlists(eng, tmp_path / "synth", progress=False)
    train_songs(eng, progress=False, epochs=2, min_count=1, workers=1, vector_size=8)
    try:
        with eng.begin() as conn:
            seed = conn.execute(sa.text("SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id "
                                        "ORDER BY t.id LIMIT 1")).scalar()
            assert radio(conn, RadioRequest(seeds=(seed,), size=10, variety=0.5), "cube")["size"] == 10
            conn.execute(sa.text("UPDATE song_vectors SET hub = NULL"))
        with eng.connect() as conn:
            with pytest.raises(NeedsRetraining):
                radio(conn, RadioRequest(seeds=(seed,), size=10, variety=0.5), "cube")
            assert radio(conn, RadioRequest(seeds=(seed,), size=10), "cube")["size"] == 10
    finally:
        eng.dispose()


def test_hnsw_and_cube_agree_on_most_neighbours(trained_engine):
    with trained_engine.connect() as conn:
        if not conn.execute(sa.text("SELECT to_regclass('song_vectors_hvec_hnsw')")).scalar():
            pytest.skip("pgvector not installed")
        keys = conn.execute(sa.text(
            "SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id ORDER BY t.id LIMIT 20"
        )).scalars().all()
        overlaps = []
        for k in keys:
            a = [p["key"] for p in radio(conn, RadioRequest(seeds=(k,), size=10), ann="cube")["playlist"]]
            b = [p["key"] for p in radio(conn, RadioRequest(seeds=(k,), size=10), ann="hnsw")["playlist"]]
            overlaps.append(len(set(a) & set(b)) / 10)
    assert np.mean(overlaps) >= 0.95


def _train_subprocess(url, epochs):
    code = ("import sys; from marconi.config import Config; from marconi.db import make_engine; "
            "from marconi.training.song2vec import train_songs; "
            f"train_songs(make_engine(Config(), url={url!r}), progress=False, epochs={epochs}, workers=1)")
    return subprocess.Popen([sys.executable, "-c", code])


def test_killed_training_leaves_previous_model_serving(new_database, base_config, data_dir, tmp_path):
    url = new_database()
    eng = make_engine(base_config, url=url)
    import_playlists(eng, data_dir / "playlists" / "yes_small", "yes", progress=False)
    first = train_songs(eng, progress=False, epochs=1)
    with eng.connect() as conn:
        before = conn.execute(sa.text("SELECT track_id, vec::text FROM song_vectors ORDER BY 1")).all()

    proc = _train_subprocess(url, epochs=200)
    deadline = time.time() + 60
    with eng.connect() as conn:  # wait until the run is recorded, i.e. training has started
        while time.time() < deadline and not conn.execute(sa.text(
                "SELECT 1 FROM model_runs WHERE status = 'building'")).first():
            time.sleep(0.2)
            conn.rollback()
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    with eng.connect() as conn:
        serving = conn.execute(sa.text("SELECT id FROM model_runs WHERE kind='songs' AND status='serving'")).scalar()
        after = conn.execute(sa.text("SELECT track_id, vec::text FROM song_vectors ORDER BY 1")).all()
    assert serving == first["run_id"]
    assert after == before

    # the killed run is not left 'building' forever: the sweep (app start-up, `marconi status`) marks it failed
    from marconi import runs

    killed = runs.sweep_dead_builders(eng)
    assert len(killed) == 1 and killed[0] != first["run_id"]
    second = train_songs(eng, progress=False, epochs=1)
    with eng.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT id, status FROM model_runs")).all())
        reason = conn.execute(sa.text("SELECT metrics->>'error' FROM model_runs WHERE id = :i"),
                              {"i": killed[0]}).scalar()
        run_ids = conn.execute(sa.text("SELECT DISTINCT run_id FROM song_vectors")).scalars().all()
    assert statuses[first["run_id"]] == "retired" and statuses[second["run_id"]] == "serving"
    assert statuses[killed[0]] == "failed" and "stopped before it finished" in reason
    assert run_ids == [second["run_id"]]
    eng.dispose()
