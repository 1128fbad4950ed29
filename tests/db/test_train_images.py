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
        return conn.execute(sa.text("SELECT id, model, params, metrics FROM model_runs WHERE kind = 'images' "
                                    "AND status = 'serving'")).one()


def test_train_images_serves_a_learned_metric_and_reports_it_honestly(labelled, base_config, image_sets):
    from click.testing import CliRunner

    from marconi.cli import main
    from marconi.image_search.search import ImageSearcher
    from marconi.imageio import load_image

    eng, url = labelled
    before = _serving(eng)
    result = CliRunner().invoke(main, ["--database-url", url, "train", "images", "--holdout-classes", "cup,watch",
                                       "--blend", "0.5", "--shrinkage", "0.3"])  # given: no validation
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{"):])
    after = _serving(eng)
    assert after.id == out["run_id"] != before.id and out["base_run"] == before.id
    assert after.params["metric"]["held_out_labels"] == ["cup", "watch"] and after.params["metric"]["fit_labels"] == 4
    assert after.params["metric"]["blend"] == 0.5 and not after.params["metric"]["chosen_by_validation"]
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


def test_demo_serves_a_metric_fitted_on_the_first_photos_and_eval_scores_only_the_others(new_database, base_config,
                                                                                         image_sets, tmp_path):
    from click.testing import CliRunner

    from marconi.cli import main
    from marconi.cli.context import Ctx
    from marconi.cli.demo import DEMO_FIT_PER_LABEL, demo_images
    from marconi.evaluation.images import eval_images
    from marconi.training.images import serving_fitted_ids

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "caltech101").symlink_to(image_sets[0])  # 6 labels x 15 photos, as the demo finds them
    url = new_database()
    cfg = base_config.with_overrides(device="cpu", encoder="efficientnet-lite0", data_dir=tmp_path, database_url=url)
    c = Ctx(cfg)
    demo_images(c, retrain=False)
    run = _serving(c.engine)
    metric = run.params["metric"]
    assert metric["fit_per_label"] == DEMO_FIT_PER_LABEL and metric["fit_images"] == 6 * DEMO_FIT_PER_LABEL
    assert metric["chosen_by_validation"] and metric["blend"] > 0
    honest = run.metrics["leave_one_out"]  # what the status shows: photos 11-15 of each label, not the fitted ones
    assert honest["queries"] == 30 and "not fitted" in honest["asked"] and 0.8 <= honest["P@1"] <= 1
    # the confidence is calibrated on the same unfitted photos (the fitted ones it would find too easily)
    assert honest["calibration_queries"] == 30 and "not fitted" in honest["calibration_asked"]
    with c.engine.connect() as conn:
        run_id, fitted = serving_fitted_ids(conn)
        first_ten = set(conn.execute(sa.text(  # photos 1-10 of each label: the first ten ids of each label
            "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY label ORDER BY id) AS n FROM images) r "
            "WHERE n <= :n"), {"n": DEMO_FIT_PER_LABEL}).scalars())
    assert run_id == run.id and fitted == first_ten

    demo_images(c, retrain=False)  # idempotent: the learned run keeps serving
    assert _serving(c.engine).id == run.id

    result = CliRunner().invoke(main, ["--database-url", url, "eval", "images", "--queries", str(image_sets[0])])
    assert result.exit_code == 0, result.output
    assert "60 queries left out: they are among the 60 photos" in result.output
    indexed = json.loads(result.output[result.output.index("{"):])
    assert indexed["excluded_fitted"] == 60 and indexed["queries"] == 30  # photos 11-15 of each label
    stored = CliRunner().invoke(main, ["--database-url", url, "eval", "images", "--metrics", "served"])
    assert stored.exit_code == 0, stored.output
    assert "60 photos are not asked" in stored.output
    ranked = json.loads(stored.output[stored.output.index("{"):])
    assert ranked["queries"] == 30 and ranked["excluded_fitted"] == 60 and ranked["served"]["P@1"] >= 0.8
    new = eval_images(c.engine, image_sets[1], cfg, progress=False)  # photos 16-20: never imported
    assert new["excluded_fitted"] == 0 and new["queries"] == 30 and new["P@1"] >= 0.8

    other = Ctx(cfg.with_overrides(encoder="efficientnet-lite0-256"))  # the configured encoder changed: re-encode
    demo_images(other, retrain=False)
    switched = _serving(other.engine)
    assert switched.id > run.id and switched.model == "efficientnet-lite0-256" and switched.params["metric"]
    other.engine.dispose()
    c.engine.dispose()
