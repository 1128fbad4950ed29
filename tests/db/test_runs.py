"""The model-run lifecycle: build lock, failures, dead builders, and a swap that never blocks the traffic."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import sqlalchemy as sa

from marconi import runs
from marconi.db import make_engine
from marconi.db import runs as runs_db
from marconi.training.song2vec import vector_rows

N_SONGS = 300


@pytest.fixture(scope="module")
def songs_engine(new_database, base_config):
    """A database with a small catalogue of songs and no model yet."""
    eng = make_engine(base_config, url=new_database())
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO tracks (key, title, artist) SELECT 't:' || i, 'song ' || i, "
                             "'artist ' || (i % 30) FROM generate_series(0, :n - 1) i"), {"n": N_SONGS})
    yield eng
    eng.dispose()


def random_run(run, dims: int, seed: int) -> int:
    """Stage random song vectors of ``dims`` (shaped like song2vec's) into ``run``; return how many."""
    with run.engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM tracks ORDER BY id")).scalars().all()
    rng = np.random.default_rng(seed)
    qv = rng.normal(size=(len(ids), dims))
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    out = rng.normal(size=(len(ids), dims))
    norms = np.linalg.norm(out, axis=1)
    m = norms.max()
    iv = np.hstack([out, np.sqrt(m * m - norms * norms)[:, None]])
    hnsw = run.has_pgvector()
    cols = ["track_id", "run_id", "vec", "qvec", "hub"] + (["hvec"] if hnsw else [])
    n = run.stage(cols, vector_rows(run.id, ids, qv, iv, rng.random(len(ids)), hnsw), dims if hnsw else None)
    run.item_norm = float(m)
    return n


def publish_random(engine, dims: int, seed: int, **build_options) -> int:
    """Build and publish a random song run; return its id."""
    with runs.build(engine, "songs", "random", {"dims": dims}, dims + 1, **build_options) as run:
        n = random_run(run, dims, seed)
        run.publish(n, {"item_norm": run.item_norm})
    return run.id


def status_of(engine, run_id: int) -> tuple[str, dict]:
    with engine.connect() as conn:
        row = runs_db.run_by_id(conn, run_id)
    return row["status"], row["metrics"]


def radio_answer(conn) -> tuple[set, list]:
    rows = conn.execute(sa.text("SELECT key, run_id FROM radio(ARRAY['t:1', 't:2'], 10)")).all()
    return {r.run_id for r in rows}, [r.key for r in rows]


def test_publish_serves_the_run_and_retires_the_previous_one(songs_engine):
    first = publish_random(songs_engine, 8, seed=1)
    second = publish_random(songs_engine, 12, seed=2)
    assert status_of(songs_engine, first)[0] == "retired"
    status, metrics = status_of(songs_engine, second)
    assert status == "serving" and metrics["item_norm"] > 0
    with songs_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT DISTINCT run_id FROM song_vectors")).scalars().all() == [second]
        assert conn.execute(sa.text("SELECT to_regclass('song_vectors_staging')")).scalar() is None
        run_ids, keys = radio_answer(conn)
    assert run_ids == {second} and len(keys) == 10


def test_a_second_build_of_the_same_kind_is_refused(songs_engine):
    with runs.build(songs_engine, "songs", "random", {}, 9) as run:
        with pytest.raises(runs.BuildInProgress) as exc:
            with runs.build(songs_engine, "songs", "random", {}, 9):
                pass
        assert exc.value.status == 409 and "pid" in exc.value.message
        with runs.build(songs_engine, "images", "other kind", {}, 9) as images_run:  # other kinds build freely
            images_run.published = True  # nothing staged: leave it building, failed below by hand
        run.published = True
    with songs_engine.begin() as conn:
        for run_id in (run.id, images_run.id):
            runs_db.fail_run(conn, run_id, "test cleanup")


def test_an_error_inside_a_build_marks_it_failed_and_keeps_the_serving_run(songs_engine):
    serving = publish_random(songs_engine, 8, seed=3)
    with pytest.raises(ValueError, match="boom"):
        with runs.build(songs_engine, "songs", "random", {}, 9) as run:
            random_run(run, 8, seed=4)
            raise ValueError("boom")
    status, metrics = status_of(songs_engine, run.id)
    assert status == "failed" and metrics["error"] == "ValueError: boom"
    with pytest.raises(RuntimeError, match="without publishing"):
        with runs.build(songs_engine, "songs", "random", {}, 9) as unpublished:
            pass
    assert status_of(songs_engine, unpublished.id)[0] == "failed"
    with songs_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('song_vectors_staging')")).scalar() is None
        assert runs.serving_run(conn, "songs")["id"] == serving
        assert radio_answer(conn)[0] == {serving}


def test_sweep_fails_runs_of_dead_builders_and_spares_live_ones(songs_engine):
    with songs_engine.begin() as conn:  # a run whose builder died: 'building', and nobody holds the build lock
        dead = runs_db.create_run(conn, "songs", "random", {}, 9)
    with runs.build(songs_engine, "images", "live", {}, 9) as live:
        assert runs.sweep_dead_builders(songs_engine) == [dead]
        assert status_of(songs_engine, live.id)[0] == "building"  # its builder holds the lock: left alone
        live.published = True  # nothing staged: leave it 'building' as if its process had died
    status, metrics = status_of(songs_engine, dead)
    assert status == "failed" and "stopped before it finished" in metrics["error"]
    assert runs.sweep_dead_builders(songs_engine) == [live.id]  # its lock is gone now
    assert runs.sweep_dead_builders(songs_engine) == []


def test_a_reader_holding_a_lock_delays_the_swap_never_the_traffic(songs_engine):
    old = publish_random(songs_engine, 8, seed=5)
    reader = songs_engine.connect()
    reader.execute(sa.text("SELECT count(*) FROM song_vectors"))  # an open transaction: a user's psql session
    done: dict = {}

    def rebuild():
        try:
            done["run"] = publish_random(songs_engine, 16, seed=6)
        except Exception as exc:  # noqa: BLE001 - reported by the assertions below
            done["error"] = exc

    thread = threading.Thread(target=rebuild)
    thread.start()
    latencies, labels = [], set()
    t_end = time.monotonic() + 3.0
    with songs_engine.connect() as conn:
        while time.monotonic() < t_end:
            t0 = time.perf_counter()
            run_ids, keys = radio_answer(conn)
            conn.commit()
            latencies.append(time.perf_counter() - t0)
            labels |= run_ids
            time.sleep(0.02)
    assert thread.is_alive() and "run" not in done  # the swap is still waiting for the reader
    assert labels == {old} and len(latencies) > 20
    assert max(latencies) < 1.0  # each answer waited at most one lock_timeout (200 ms) behind a swap attempt
    reader.rollback()
    reader.close()
    thread.join(30)
    assert "error" not in done and status_of(songs_engine, done["run"])[0] == "serving"
    with songs_engine.connect() as conn:
        assert radio_answer(conn)[0] == {done["run"]}


def test_a_swap_that_waits_too_long_fails_with_what_to_do(songs_engine):
    old = publish_random(songs_engine, 8, seed=7)
    with songs_engine.connect() as reader:
        reader.execute(sa.text("SELECT count(*) FROM song_vectors"))
        with pytest.raises(runs.SwapTimeout) as exc:
            publish_random(songs_engine, 8, seed=8, swap_wait_s=1.0)
        reader.rollback()
    assert exc.value.status == 503 and "pg_terminate_backend" in exc.value.message and "pid" in exc.value.message
    with songs_engine.connect() as conn:
        assert runs.serving_run(conn, "songs")["id"] == old
        failed = conn.execute(sa.text("SELECT status FROM model_runs ORDER BY id DESC LIMIT 1")).scalar()
    assert failed == "failed"


def test_run_metadata_is_cached_once_a_run_has_served(songs_engine):
    run_id = publish_random(songs_engine, 8, seed=9)
    with songs_engine.connect() as conn:
        first = runs.run_by_id(conn, run_id)
        with songs_engine.begin() as other:
            other.execute(sa.text("UPDATE model_runs SET model = 'changed' WHERE id = :i"), {"i": run_id})
        assert runs.run_by_id(conn, run_id) is first and first["model"] == "random"
        building = runs_db.create_run(conn, "images", "x", {}, 3)
        conn.commit()
        assert runs.run_by_id(conn, building)["status"] == "building"
        runs_db.fail_run(conn, building, "test cleanup")
        conn.commit()
        assert runs.run_by_id(conn, building)["status"] == "failed"  # not cached while it could still change


def test_each_database_has_its_own_cached_runs(new_database, base_config):
    """Two databases (two tests', or a bench's beside the demo's) each have a run 1: neither is answered with the
    other's, once both have served."""
    engines = [make_engine(base_config, url=new_database()) for _ in range(2)]
    try:
        for eng, model in zip(engines, ("first-db", "second-db"), strict=True):
            with eng.begin() as conn:
                run_id = runs_db.create_run(conn, "images", model, {"calibration": model}, 3)
                conn.execute(sa.text("UPDATE model_runs SET status = 'serving' WHERE id = :i"), {"i": run_id})
        ids = set()
        for eng, model in zip(engines, ("first-db", "second-db"), strict=True):
            with eng.connect() as conn:
                run = runs.run_by_id(conn, 1)
                assert (run["model"], run["params"]["calibration"]) == (model, model)
                assert runs.run_by_id(conn, 1) is run  # and it is cached
                ids.add(run["id"])
        assert ids == {1}
    finally:
        for eng in engines:
            eng.dispose()


def test_app_start_up_fails_runs_left_building_by_a_killed_job(songs_engine, base_config):
    from marconi import create_app

    with songs_engine.begin() as conn:
        dead = runs_db.create_run(conn, "images", "killed", {}, 9)
    create_app(base_config.with_overrides(database_url=songs_engine.url.render_as_string(hide_password=False)
                                          .replace("postgresql+psycopg2://", "postgresql://")))
    status, metrics = status_of(songs_engine, dead)
    assert status == "failed" and "stopped before it finished" in metrics["error"]
