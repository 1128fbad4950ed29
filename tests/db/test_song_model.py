"""song2vec training, atomic swaps, and the kNN SQL using the GiST index."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import sqlalchemy as sa

from marconi.db import make_engine
from marconi.db.neighbours import _SONGS_CUBE
from marconi.embed.song2vec import SongParams, filter_playlist, train_songs
from marconi.importers.playlists import import_playlists


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


def test_knn_query_uses_gist_index(trained_engine):
    with trained_engine.begin() as conn:
        q = conn.execute(sa.text("SELECT vec::text FROM song_vectors LIMIT 1")).scalar()
        plan = "\n".join(r[0] for r in conn.execute(
            sa.text("EXPLAIN " + _SONGS_CUBE.text), {"q": q, "k": 25}))
        full_plan = "\n".join(r[0] for r in conn.execute(sa.text(
            "EXPLAIN SELECT track_id FROM song_vectors ORDER BY cube_distance(vec, CAST(:q AS cube)) LIMIT 25"),
            {"q": q}))
    assert "song_vectors_vec_gist" in plan and "Order By" in plan
    # the cube_distance() spelling returns the same order but cannot use the index
    assert "song_vectors_vec_gist" not in full_plan


def test_sql_radio_function_matches_api_order(trained_engine):
    from marconi.radio import RadioRequest, make_radio

    with trained_engine.connect() as conn:
        seeds = conn.execute(sa.text(
            "SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id ORDER BY t.id LIMIT 2"
        )).scalars().all()
        sql = conn.execute(sa.text("SELECT key FROM radio(:s, 20)"), {"s": seeds}).scalars().all()
        api = [p["key"] for p in make_radio(conn, RadioRequest(tuple(seeds), 20), ann="cube")["playlist"]]
        capped = conn.execute(sa.text("SELECT artist FROM radio(:s, 20, 1)"), {"s": seeds}).scalars().all()
    assert len(sql) == 20 and not set(seeds) & set(sql)
    assert sql == api
    assert len(capped) == len({a.lower() for a in capped}) == 20


def test_hub_scores_match_brute_force_and_find_a_planted_hub():
    from marconi.embed.song2vec import hub_scores

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
    from marconi.radio import NeedsRetraining, RadioRequest, make_radio

    with trained_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM song_vectors WHERE hub IS NULL")).scalar() == 0
        seeds = conn.execute(sa.text(
            "SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id ORDER BY t.id LIMIT 60"
        )).scalars().all()

        def tops(variety):
            lists = [[p["key"] for p in make_radio(conn, RadioRequest((s,), 10, variety=variety), "cube")["playlist"]]
                     for s in seeds]
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
    # a model trained before hub scores existed: variety is refused with what to do, variety 0 still works
    with trained_engine.connect() as conn:
        conn.execute(sa.text("UPDATE song_vectors SET hub = NULL"))  # undone below: the database is shared
        try:
            with pytest.raises(NeedsRetraining):
                make_radio(conn, RadioRequest((seeds[0],), 10, variety=0.5), "cube")
            assert make_radio(conn, RadioRequest((seeds[0],), 10), "cube")["size"] == 10
        finally:
            conn.rollback()


def test_hnsw_and_cube_agree_on_most_neighbours(trained_engine):
    from marconi.db.neighbours import hnsw_ready, nearest_songs
    from marconi.radio import RadioRequest, make_radio

    with trained_engine.connect() as conn:
        if not hnsw_ready(conn):
            pytest.skip("pgvector not installed")
        keys = conn.execute(sa.text(
            "SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id ORDER BY t.id LIMIT 20"
        )).scalars().all()
        overlaps = []
        for k in keys:
            a = [p["key"] for p in make_radio(conn, RadioRequest((k,), 10), ann="cube")["playlist"]]
            b = [p["key"] for p in make_radio(conn, RadioRequest((k,), 10), ann="hnsw")["playlist"]]
            overlaps.append(len(set(a) & set(b)) / 10)
        assert nearest_songs  # imported for the reader: both paths share it
    assert np.mean(overlaps) >= 0.95


def _train_subprocess(url, epochs):
    code = ("import sys; from marconi.config import Config; from marconi.db import make_engine; "
            "from marconi.embed.song2vec import train_songs; "
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

    second = train_songs(eng, progress=False, epochs=1)
    with eng.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT id, status FROM model_runs")).all())
        run_ids = conn.execute(sa.text("SELECT DISTINCT run_id FROM song_vectors")).scalars().all()
    assert statuses[first["run_id"]] == "retired" and statuses[second["run_id"]] == "serving"
    assert run_ids == [second["run_id"]]
    eng.dispose()
