"""Image search answers from one model run: a run swapped in under a warm searcher (another PCA width) is noticed
from the kNN rows' run_id and the query is asked again with that run's PCA and calibration; one statement per query."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import sqlalchemy as sa

from marconi import runs
from marconi.db.cube import to_cube, to_pg_array
from marconi.db.image_words import IMAGE_CLASS_COLUMNS, IMAGE_TAG_COLUMNS
from marconi.image_search.build import COLUMNS
from marconi.image_search.calibration import calibrate
from marconi.image_search.pca import PCA
from marconi.image_search.search import ImageSearcher, Snapshot
from marconi.imageio import load_image


def _rebuild(engine: sa.Engine, dims: int) -> int:
    """Publish a new image run from the serving run's stored full vectors, with a PCA of ``dims``; return its id."""
    with engine.connect() as conn:
        model = conn.execute(sa.text("SELECT model FROM model_runs WHERE kind = 'images' AND status = 'serving'")
                             ).scalar_one()
        rows = conn.execute(sa.text(
            "SELECT v.image_id, v.full_vec, i.label FROM image_vectors v JOIN images i ON i.id = v.image_id "
            "ORDER BY v.image_id")).all()
        classes = conn.execute(sa.text("SELECT image_id, class_index, p, score FROM image_classes")).all()
        tags = conn.execute(sa.text("SELECT image_id, tag, score, direct, rank FROM image_tags")).all()
    ids = [r[0] for r in rows]
    full = np.array([r[1] for r in rows], dtype=np.float32)
    pca = PCA.fit(full, dims)
    reduced = pca.transform(full)
    cal, report = calibrate(full, [r[2] for r in rows], rank=reduced)
    with runs.build(engine, "images", model, {"pca_dims": dims, "rebuilt_by": "test_image_index"}, pca.dims) as run:
        run.save_artifact("pca.npz", pca.to_bytes())
        n = run.stage(COLUMNS, ((iid, run.id, to_cube(reduced[i]), to_pg_array(full[i])) for i, iid in enumerate(ids)))
        run.stage(IMAGE_CLASS_COLUMNS, ((r[0], run.id, r[1], r[2], r[3]) for r in classes), table="image_classes")
        run.stage(IMAGE_TAG_COLUMNS, ((r[0], run.id, *r[1:]) for r in tags), table="image_tags")
        run.publish(n, {"calibration": cal, "leave_one_out": report, "pca_dims": pca.dims})
    return run.id


@contextlib.contextmanager
def _statements(engine: sa.Engine):
    """Collect the SQL statements sent on ``engine`` inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@pytest.fixture(scope="module")
def query_image(image_sets):
    """A held-out Motorbikes photo."""
    return load_image(next(image_sets[1].joinpath("Motorbikes").glob("*.jpg")).read_bytes())


@pytest.fixture(scope="module")
def restore_width(images_engine):
    """Serve a 100-wide run again after this module (other modules share the database)."""
    yield
    _rebuild(images_engine, 100)


def test_a_new_run_under_a_warm_searcher_is_noticed_and_asked_again(images_engine, base_config, query_image,
                                                                    restore_width):
    config = base_config.with_overrides(device="cpu")
    searcher = ImageSearcher(config, images_engine)
    with images_engine.connect() as conn:
        first = searcher.search(conn, query_image, 5)
    old_width = searcher.snapshot(conn).pca.dims

    new_run = _rebuild(images_engine, 20)
    assert new_run != first["model_run"] and old_width != 20

    with _statements(images_engine) as seen, images_engine.connect() as conn:
        answer = searcher.search(conn, query_image, 5)
    assert answer["model_run"] == new_run
    current = searcher.snapshot(conn)
    assert isinstance(current, Snapshot) and current.run_id == new_run and current.pca.dims == 20
    assert sum("image_vectors" in s for s in seen) == 2  # the stale try, then the try with the new run's PCA

    fresh = ImageSearcher(config, images_engine)
    with images_engine.connect() as conn:
        again = fresh.search(conn, query_image, 5)
    assert again == answer  # the same answer a searcher that only ever knew the new run gives
    assert answer["matches"][0]["label"] == "Motorbikes"

    with _statements(images_engine) as seen, images_engine.connect() as conn:
        assert searcher.search(conn, query_image, 5) == answer
    assert len(seen) == 1  # warm: one statement per query, the run's metadata comes from the per-process cache


def test_similar_reads_the_query_and_its_neighbours_in_one_statement(images_engine, base_config, restore_width):
    searcher = ImageSearcher(base_config.with_overrides(device="cpu"), images_engine)
    with images_engine.connect() as conn:
        image_id = conn.execute(sa.text("SELECT image_id FROM image_vectors ORDER BY image_id LIMIT 1")).scalar()
        searcher.similar(conn, image_id, 5)  # warm the snapshot
        with _statements(images_engine) as seen:
            answer = searcher.similar(conn, image_id, 5)
        serving = conn.execute(sa.text("SELECT id FROM model_runs WHERE kind = 'images' AND status = 'serving'")
                               ).scalar()
    assert len(seen) == 1 and answer["model_run"] == serving
    assert image_id not in [m["id"] for m in answer["matches"]] and len(answer["matches"]) == 5
    assert answer["query"]["image_id"] == image_id


def test_a_dimension_error_reloads_the_serving_run(images_engine, base_config, query_image, monkeypatch):
    import marconi.image_search.search as search_mod

    searcher = ImageSearcher(base_config.with_overrides(device="cpu"), images_engine)
    with images_engine.connect() as conn:
        want = searcher.search(conn, query_image, 5)
    real = search_mod.images_db.nearest_images
    calls = []

    def once_mismatched(conn, q, k):
        calls.append(len(q))
        if len(calls) == 1:
            raise sa.exc.DataError("SELECT ...", {}, Exception("different vector dimensions 20 and 100"))
        return real(conn, q, k)

    monkeypatch.setattr(search_mod.images_db, "nearest_images", once_mismatched)
    with images_engine.connect() as conn:
        assert searcher.search(conn, query_image, 5) == want
    assert len(calls) == 2
