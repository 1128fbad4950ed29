"""A collection without labels: a flat folder of photos (or one all under one label) is imported, encoded with a
confidence calibrated on altered copies of its own images ("self-supervised"), and searched by photo."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from marconi.config import Config
from marconi.db import make_engine

FLAT = "flat"


def _photos(data_dir, n_classes: int = 20, per_class: int = 2) -> list:
    """A few Caltech photos from each of several classes (sorted, so the same every run)."""
    src = data_dir / "images" / "caltech101"
    classes = sorted(p for p in src.iterdir() if p.is_dir())[:n_classes]
    return [f for c in classes for f in sorted(c.glob("*.jpg"))[:per_class]]


def _encoded(new_database, base_config, folder):
    """A fresh database with ``folder`` imported and encoded with EfficientNet-Lite0 on the CPU: (engine, summary)."""
    from marconi.image_search.build import encode_images
    from marconi.importers.images import import_images

    eng = make_engine(Config(), url=new_database())
    counts = import_images(eng, folder, progress=False)
    assert counts["failed"] == 0 and counts["inserted"] > 0
    summary = encode_images(eng, base_config.with_overrides(device="cpu", encoder="efficientnet-lite0"),
                            progress=False)
    return eng, summary


@pytest.fixture(scope="module")
def flat_folder(data_dir, tmp_path_factory):
    """40 Caltech photos in one folder, no class folders: imported without labels."""
    root = tmp_path_factory.mktemp("unlabelled") / FLAT
    root.mkdir()
    for f in _photos(data_dir):
        shutil.copy(f, root / f"{f.parent.name}_{f.name}")
    return root


@pytest.fixture(scope="module")
def flat(new_database, base_config, flat_folder):
    """The flat folder imported and encoded: (engine, encode summary)."""
    eng, summary = _encoded(new_database, base_config, flat_folder)
    yield eng, summary
    eng.dispose()


def _serving_metrics(eng) -> dict:
    with eng.connect() as conn:
        return conn.execute(sa.text(
            "SELECT metrics FROM model_runs WHERE kind = 'images' AND status = 'serving'")).scalar_one()


def _jpeg(path, scale: float, quality: int = 80) -> bytes:
    """The photo at ``path`` resized by ``scale`` and re-encoded as JPEG: another file of the same picture."""
    img = Image.open(path).convert("RGB")
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_an_unlabelled_folder_is_served_with_a_self_supervised_calibration(flat):
    eng, summary = flat
    with eng.connect() as conn:
        labels = conn.execute(sa.text("SELECT count(*), count(label) FROM images")).one()
    assert labels == (40, 0)
    metrics = _serving_metrics(eng)
    print(f"\nunlabelled build: {summary}")
    assert summary["vectors"] == 40
    assert metrics["calibration"]["method"] == "self-supervised"
    report = metrics["leave_one_out"]
    assert report["method"] == "self-supervised" and report["copies"] > 0 and report["unreadable"] == 0
    # the confidence separates "the collection holds this photo" from "it does not" on the held-out copies
    assert report["auc_confidence"] >= 0.9
    assert report["mean_confidence_right"] > report["mean_confidence_wrong"] + 0.3
    json.dumps(metrics, allow_nan=False)  # no NaN or Infinity in the stored metrics
    json.dumps(summary, allow_nan=False)


def test_a_photo_search_finds_an_indexed_photo_and_doubts_an_unrelated_one(flat, flat_folder, base_config, data_dir):
    from marconi.image_search.search import ImageSearcher

    eng, _ = flat
    searcher = ImageSearcher(base_config.with_overrides(device="cpu"), eng)
    photo = sorted(flat_folder.iterdir())[7]
    with eng.connect() as conn:
        want = conn.execute(sa.text("SELECT id FROM images WHERE source_url = :u"),
                            {"u": f"{FLAT}/{photo.name}"}).scalar_one()
    same = searcher.search_bytes(_jpeg(photo, 0.7), k=5)
    assert same["matches"][0]["id"] == want
    assert same["confidence"] >= 0.8 and same["confident"]

    gravel = data_dir / "images" / "skimage-samples" / "gravel.png"
    other = searcher.search_bytes(gravel.read_bytes(), k=5)
    print(f"\nconfidence: re-encoded indexed photo {same['confidence']}, gravel.png {other['confidence']}")
    assert len(other["matches"]) == 5
    assert other["confidence"] < same["confidence"] - 0.3 and not other["confident"]


def test_a_folder_all_under_one_label_is_calibrated_without_labels(new_database, base_config, data_dir,
                                                                   tmp_path_factory):
    root = tmp_path_factory.mktemp("one-label")
    (root / "holiday").mkdir()
    for f in _photos(data_dir, n_classes=10, per_class=2):
        shutil.copy(f, root / "holiday" / f"{f.parent.name}_{f.name}")
    eng, summary = _encoded(new_database, base_config, root)
    try:
        metrics = _serving_metrics(eng)
        assert metrics["calibration"]["method"] == "self-supervised"
        assert metrics["leave_one_out"]["auc_confidence"] >= 0.8
        json.dumps(metrics, allow_nan=False)
        json.dumps(summary, allow_nan=False)
    finally:
        eng.dispose()


def test_an_unlabelled_collection_is_searchable_by_words_and_has_tags(flat, base_config):
    """Words find photos in a collection without labels: the ranking comes from the pixels."""
    from marconi.image_search.text_search import TextSearcher

    eng, summary = flat
    assert summary["words"]["tags"] > 0
    with eng.connect() as conn:
        labels = dict(conn.execute(sa.text("SELECT id, label FROM images")).all())
        names = dict(conn.execute(sa.text("SELECT id, source_url FROM images")).all())
        searcher = TextSearcher(base_config.with_overrides(device="cpu"))
        answers = {q: searcher.search(conn, q, 2) for q in ("leopard", "an accordion", "aeroplane")}
        tagged = conn.execute(sa.text("SELECT count(DISTINCT image_id) FROM image_tags")).scalar()
    assert set(labels.values()) == {None}  # no labels at all
    assert tagged == len(labels)
    # the flat files keep their Caltech class in their names, e.g. 'Leopards_image_0001.jpg' (the ranker never reads it)
    for query, prefix in (("leopard", "Leopards_"), ("an accordion", "accordion_"), ("aeroplane", "airplanes_")):
        top = [names[m["id"]].rsplit("/", 1)[-1] for m in answers[query]["matches"]]
        assert top and top[0].startswith(prefix), (query, top)


def test_class_scores_are_smoothed_over_each_images_neighbours(flat):
    """image_classes keeps the classifier's own p and a search score: half √p, half the nearest images' mean √p."""
    eng, _ = flat
    with eng.connect() as conn:
        rows = conn.execute(sa.text("SELECT image_id, class_index, p, score FROM image_classes "
                                    "ORDER BY image_id, score DESC")).all()
    assert rows and all(r.score is not None and 0 <= r.score <= 1 for r in rows)
    assert all(r.score >= np.sqrt(r.p) / 2 - 1e-6 for r in rows)  # the image's own half is always there
    assert sum(abs(r.score - np.sqrt(r.p)) > 0.05 for r in rows) > len(rows) / 4  # neighbours moved most scores
    by_image = {}
    for r in rows:
        by_image.setdefault(r.image_id, []).append(r)
    assert all(len(v) == 10 for v in by_image.values())
    # some stored classes come from the neighbours alone: the image itself gives them (almost) nothing
    assert any(r.p < 0.001 and r.score > 0.05 for r in rows)


def test_text_eval_measures_an_index_built_without_labels(flat, flat_folder, base_config, tmp_path):
    """marconi eval text-images finds the truth by the files' bytes, so it measures an index without labels; the
    tag match counted in base forms with the served words never counts fewer images than the first definition."""
    from marconi.evaluation.text_images import eval_text_images

    eng, _ = flat
    for f in sorted(flat_folder.iterdir()):  # 'Leopards_image_0001.jpg' → Leopards/image_0001.jpg, same bytes
        label, _, name = f.name.partition("_image_")
        (tmp_path / label).mkdir(exist_ok=True)
        shutil.copy(f, tmp_path / label / f"image_{name}")
    out = eval_text_images(eng, tmp_path, base_config.with_overrides(device="cpu"), progress=False)
    assert out["images"] == len(list(flat_folder.iterdir())) and out["queries"] == 20
    assert 0 < out["P@10"] <= 1 and 0 <= out["tag_match@5"] <= out["tag_match@5_served_words"] <= 1
    assert out["tag_match@5_served_words"] <= out["tag_match_ceiling"] <= 1  # served words are vocabulary words
    assert 0 < out["tag_match@5_shown"] <= out["tag_match_ceiling"]  # so are the five tags shown first
    assert json.dumps(out, allow_nan=False)  # plain numbers: no NaN
