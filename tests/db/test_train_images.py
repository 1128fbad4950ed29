"""`marconi train images`: a learned metric, reported on unseen data, served as a new image run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sqlalchemy as sa

from marconi.config import Config
from marconi.db import make_engine


@pytest.fixture(scope="module")
def labelled(new_database, base_config, image_sets):
    """A fresh database with the 90 labelled index photos (6 labels) imported and encoded: (engine, url)."""
    from marconi.image_search.build import encode_images
    from marconi.importers.images import import_images

    url = new_database()
    eng = make_engine(Config(), url=url)
    import_images(eng, image_sets[0], progress=False)
    encode_images(eng, base_config.with_overrides(device="cpu", encoder="efficientnet-lite0"), progress=False)
    yield eng, url
    eng.dispose()


def _serving(eng):
    with eng.connect() as conn:
        return conn.execute(sa.text("SELECT id, params, metrics FROM model_runs WHERE kind = 'images' "
                                    "AND status = 'serving'")).one()


def test_train_images_serves_a_learned_metric_and_reports_it_honestly(labelled, base_config, image_sets):
    from click.testing import CliRunner

    from marconi.cli import main
    from marconi.image_search.search import ImageSearcher
    from marconi.imageio import load_image

    eng, url = labelled
    before = _serving(eng)
    result = CliRunner().invoke(main, ["--database-url", url, "train", "images", "--holdout-classes", "cup,watch"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{"):])
    after = _serving(eng)
    assert after.id == out["run_id"] != before.id and out["base_run"] == before.id
    assert after.params["metric"]["held_out_labels"] == ["cup", "watch"] and after.params["metric"]["fit_labels"] == 4
    report = out["report"]
    assert report["held_out_labels"]["labels"] == 2 and report["held_out_labels"]["learned"]["queries"] == 30
    assert report["unseen_photos"]["learned"]["queries"] == 28  # 4 labels × the second 7 of 15 photos
    with eng.connect() as conn:
        artifacts = conn.execute(sa.text("SELECT name FROM model_artifacts WHERE run_id = :r"), {"r": after.id}
                                 ).scalars().all()
        stored = np.asarray(conn.execute(sa.text("SELECT full_vec FROM image_vectors LIMIT 1")).scalar())
        classes = conn.execute(sa.text("SELECT count(*), min(run_id), max(run_id) FROM image_classes")).one()
    assert {"pca.npz", "metric.npz"} <= set(artifacts)
    assert stored.shape == (1280,)  # the stored vectors stay the encoder's
    assert classes[0] == 900 and classes[1] == classes[2] == after.id  # classes carried over to the new run
    searcher = ImageSearcher(base_config.with_overrides(device="cpu"), eng)
    query = sorted((image_sets[1] / "dalmatian").glob("*.jpg"))[0]
    with eng.connect() as conn:
        answer = searcher.search(conn, load_image(query.read_bytes()), 5)
        assert searcher.snapshot(conn).metric is not None
    assert answer["model_run"] == after.id and answer["matches"][0]["label"] == "dalmatian"
    assert answer["confident"]


def test_train_images_refuses_unknown_holdout_and_unlabelled_collections(labelled, new_database, base_config,
                                                                        data_dir, tmp_path):
    from click.testing import CliRunner

    from marconi.cli import main

    _, url = labelled
    bad = CliRunner().invoke(main, ["--database-url", url, "train", "images", "--holdout-classes", "unicorns"])
    assert bad.exit_code != 0 and "not in the collection: unicorns" in bad.output
    empty = new_database()
    nothing = CliRunner().invoke(main, ["--database-url", empty, "train", "images"])
    assert nothing.exit_code != 0 and "marconi encode images" in nothing.output
