"""The image answer confidence: features of an answer list, the logistic calibration, AUC, and calibrate(), with
labels and without them (altered copies of indexed images, encoded by a stand-in encoder)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from marconi.image_search.calibration import (
    Calibration,
    alter,
    auc,
    calibrate,
    calibrate_self_supervised,
    confidence_features,
    labelled_enough,
)


def test_confidence_features_on_hand_made_lists():
    sims = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.2])
    labels = ["cat"] * 4 + ["dog"] * 6 + ["cat"]
    top, margin, agree = confidence_features(sims, labels)
    assert top == pytest.approx(0.9)
    assert margin == pytest.approx(0.9 - 0.3)  # over the 10th, not the 11th
    assert agree == pytest.approx(0.4)  # 4 of the top 10 share the top label
    short = confidence_features(np.array([0.7, 0.5]), ["a", "a"])
    assert short.tolist() == pytest.approx([0.7, 0.2, 1.0])  # margin over the last when fewer than 10
    assert confidence_features(np.array([0.8, 0.7]), [None, None])[2] == 0.0  # unlabelled: no agreement
    assert confidence_features(np.array([]), []).tolist() == [0.0, 0.0, 0.0]


def test_auc_of_known_cases():
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0])) == 1.0
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0])) == 0.0
    # pairs (right, wrong): (0.9 > 0.5), (0.9 > 0.1), (0.3 < 0.5), (0.3 > 0.1): 3 of 4
    assert auc(np.array([0.9, 0.3, 0.5, 0.1]), np.array([True, True, False, False])) == pytest.approx(0.75)
    assert auc(np.array([0.4, 0.6]), np.array([1, 1])) is None
    assert auc(np.array([0.4, 0.6]), np.array([0, 0])) is None


def test_fit_separates_separable_data():
    rng = np.random.default_rng(0)
    right = rng.normal([0.8, 0.3, 0.9], 0.05, size=(100, 3))
    wrong = rng.normal([0.4, 0.05, 0.2], 0.05, size=(100, 3))
    x, y = np.vstack([right, wrong]), np.r_[np.ones(100), np.zeros(100)]
    cal = Calibration.fit(x, y)
    conf = np.array([cal(f) for f in x])
    assert auc(conf, y) == 1.0
    assert conf[:100].min() > 0.5 > conf[100:].max()
    assert np.all((conf >= 0) & (conf <= 1))
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again(x[0]) == pytest.approx(cal(x[0]))


def test_fit_on_a_coin_flip_stays_near_one_half():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    y = rng.integers(0, 2, 400).astype(float)
    cal = Calibration.fit(x, y)
    assert abs(np.mean([cal(f) for f in x]) - y.mean()) < 0.05


def _clustered(classes: int = 8, per_class: int = 25, dims: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dims))
    x = np.vstack([c + 0.25 * rng.normal(size=(per_class, dims)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = [f"class{i}" for i in range(classes) for _ in range(per_class)]
    return x.astype(np.float32), labels


def test_calibrate_on_clustered_data():
    x, labels = _clustered()
    cal_dict, report = calibrate(x, labels, sample=200)
    cal = Calibration.from_dict(cal_dict)
    assert report["queries"] == 200
    assert report["P@1"] >= 0.98 and report["P@10"] >= 0.95
    # wrong answers are the "unknown class" queries here: the confidence must rank the right ones above them
    assert report["mean_confidence_right"] > report["mean_confidence_wrong"] + 0.3
    assert report["mean_confidence_unknown_class"] == pytest.approx(report["mean_confidence_wrong"], abs=0.05)
    assert report["auc_confidence"] >= 0.95
    assert 0 <= cal(np.array([0.9, 0.3, 1.0])) <= 1


def test_calibrate_ranks_by_the_given_vectors():
    x, labels = _clustered(seed=2)
    rng = np.random.default_rng(5)
    noise = rng.normal(size=x.shape)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    _, by_noise = calibrate(x, labels, sample=200, rank=noise.astype(np.float32))
    _, by_full = calibrate(x, labels, sample=200)
    assert by_full["P@1"] >= 0.98 and by_noise["P@1"] < 0.5


def test_calibrate_asks_only_the_given_query_rows():
    x, labels = _clustered(seed=3)  # 8 classes x 25
    noise = np.random.default_rng(33).normal(scale=1e-3, size=(25, x.shape[1]))
    x[:25] = x[25:50] + noise  # class0's photos are twins of class1's: each finds its twin, of the other label
    _, class0 = calibrate(x, labels, sample=1000, query_rows=np.arange(25))
    _, everyone = calibrate(x, labels, sample=1000)
    assert class0["queries"] == 25 and everyone["queries"] == 200
    assert class0["P@1"] < 0.1 and everyone["P@1"] > 0.7


def test_calibrate_without_labels_or_encoder_falls_back_to_top_similarity():
    x, _ = _clustered(classes=3, per_class=10)
    cal_dict, report = calibrate(x, [None] * len(x), sample=30)
    assert cal_dict == {"weights": [10.0, 0.0, 0.0], "bias": -7.0, "method": "fixed"}
    assert report["method"] == "fixed"
    assert report["P@1"] == 0.0 and report["P@10"] == 0.0  # an unlabelled neighbour is no hit
    assert report["mean_confidence_right"] is None  # never NaN: the report is stored as JSON with the run
    json.dumps(report, allow_nan=False)


def test_labelled_enough():
    assert labelled_enough(["a"] * 10 + ["b"] * 10)
    assert not labelled_enough([None] * 20)
    assert not labelled_enough(["a"] * 20)  # one label: every answer would be right
    assert not labelled_enough(["a", "a", "b", "b"])  # too few labelled images
    assert not labelled_enough(["a"] * 6 + ["b"] * 6 + [None] * 30)  # most images have no label
    assert not labelled_enough([f"x{i}" for i in range(30)])  # no label shared: leave-one-out never finds it
    assert labelled_enough(["a"] * 15 + ["b"] * 15 + [None] * 20)


def test_tiny_labelled_sets_do_not_crash():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cal_dict, report = calibrate(x, ["a", "a", "b", "b", "a"])  # fewer images than the 10 an answer lists
    assert report["queries"] == 5
    json.dumps([cal_dict, report], allow_nan=False)


# ---------------------------------------------------------------------------------------- without labels
def _pictures(n: int, seed: int = 0, size: int = 96) -> list[Image.Image]:
    """Synthetic photos: each a few blocks of colours drawn from a palette of its own."""
    rng = np.random.default_rng(seed)
    pics = []
    for _ in range(n):
        palette = rng.integers(0, 256, size=(3, 3))
        blocks = rng.integers(0, 3, size=(6, 6))
        pixels = palette[blocks].repeat(size // 6, axis=0).repeat(size // 6, axis=1).astype(np.uint8)
        pics.append(Image.fromarray(pixels, "RGB"))
    return pics


def _histogram_encoder(imgs: list[Image.Image]) -> np.ndarray:
    """A stand-in encoder: the square root of each image's 4x4x4 colour histogram, centred and L2-normalised.

    A crop, a flip or a small rotation keep most of a picture's colours, so an altered copy lands near its original.
    """
    rows = []
    for img in imgs:
        q = np.asarray(img.convert("RGB"), dtype=np.int64) // 64
        h = np.bincount((q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).ravel(), minlength=64).astype(np.float64)
        rows.append(np.sqrt(h / h.sum()) - 1 / 8)
    x = np.array(rows)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_alter_makes_a_smaller_jpeg_copy_and_leaves_the_original_alone():
    img = _pictures(1)[0].resize((400, 300))
    before = np.asarray(img).copy()
    a = alter(img, np.random.default_rng(0))
    b = alter(img, np.random.default_rng(0))
    assert a.mode == "RGB" and 160 <= max(a.size) <= 480
    assert np.array_equal(np.asarray(a), np.asarray(b))  # the seed decides everything
    assert not np.array_equal(np.asarray(a), np.asarray(alter(img, np.random.default_rng(1))))
    assert np.array_equal(np.asarray(img), before)
    aspects = [c.width / c.height for c in (alter(img, np.random.default_rng(s)) for s in range(20))]
    assert min(aspects) > 0.5 and max(aspects) < 2.5  # a 4:3 photo cropped at 3:4 to 4:3 of its own shape
    tiny = alter(Image.new("RGB", (1, 1), (10, 20, 30)), np.random.default_rng(0))
    assert min(tiny.size) >= 1


def test_weighted_fit_equals_repeating_rows():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(float)
    w = rng.integers(1, 4, size=60).astype(float)
    weighted = Calibration.fit(x, y, sample_weight=w)
    repeated = Calibration.fit(np.repeat(x, w.astype(int), axis=0), np.repeat(y, w.astype(int)))
    assert weighted.weights == pytest.approx(repeated.weights, rel=1e-6)
    assert weighted.bias == pytest.approx(repeated.bias, rel=1e-6)
    ones = Calibration.fit(x, y, sample_weight=np.ones(60))
    assert ones.weights == pytest.approx(Calibration.fit(x, y).weights)


def _self_supervised(n: int, labels: list | None = None, **kw):
    pics = _pictures(n, seed=n)
    full = _histogram_encoder(pics)
    loads = []

    def originals(rows):
        loads.append(list(rows))
        return [pics[r] for r in rows]

    cal_dict, report = calibrate(full, labels or [None] * n, encode=_histogram_encoder, originals=originals, **kw)
    return cal_dict, report, loads


def test_calibrate_without_labels_learns_from_altered_copies():
    cal_dict, report, loads = _self_supervised(60, copies=100)
    assert cal_dict["method"] == report["method"] == "self-supervised"
    assert report["copies"] == 100 and report["queries"] == 200 and report["unreadable"] == 0
    assert report["P@1"] >= 0.8  # most copies find their own original first
    assert report["auc_confidence"] >= 0.85
    assert report["mean_confidence_right"] > report["mean_confidence_wrong"] + 0.2
    assert max(len(part) for part in loads) <= 32  # originals are read a chunk at a time
    cal = Calibration.from_dict(cal_dict)
    assert cal(np.array([0.99, 0.5, 0.0])) > cal(np.array([0.3, 0.02, 0.0]))
    json.dumps([cal_dict, report], allow_nan=False)


def test_one_label_for_everything_is_calibrated_like_no_labels():
    cal_dict, report, _ = _self_supervised(30, labels=["holiday"] * 30, copies=60)
    assert cal_dict["method"] == "self-supervised" and report["copies"] == 60
    json.dumps([cal_dict, report], allow_nan=False)


def test_labelled_sets_keep_the_labelled_calibration_when_an_encoder_is_given():
    x, labels = _clustered()
    plain = calibrate(x, labels, sample=200)

    def never(_):
        raise AssertionError("a labelled set needs no altered copies")

    assert calibrate(x, labels, sample=200, encode=never, originals=never) == plain
    assert plain[0]["method"] == plain[1]["method"] == "labels"


def test_tiny_unlabelled_sets_and_unreadable_originals():
    for n in (1, 2, 3):
        cal_dict, report, _ = _self_supervised(n)
        assert report["copies"] == 3 * n  # each image at most three times
        json.dumps([cal_dict, report], allow_nan=False)
    pics = _pictures(20)
    full = _histogram_encoder(pics)
    cal_dict, report = calibrate_self_supervised(full, [None] * 20, _histogram_encoder,
                                                 lambda rows: [None if r % 2 else pics[r] for r in rows], copies=20)
    assert report["copies"] + report["unreadable"] == 20 and report["unreadable"] > 0
    nothing = calibrate_self_supervised(full, [None] * 20, _histogram_encoder, lambda rows: [None] * len(rows))
    assert nothing[0]["method"] == "fixed" and nothing[1]["copies"] == 0
    json.dumps(nothing, allow_nan=False)


def test_ranking_by_projections_needs_the_projection():
    pics = _pictures(10)
    full = _histogram_encoder(pics)
    with pytest.raises(ValueError, match="project"):
        calibrate_self_supervised(full, [None] * 10, _histogram_encoder, lambda rows: [pics[r] for r in rows],
                                  rank=full[:, :8])
    cal_dict, report = calibrate_self_supervised(full, [None] * 10, _histogram_encoder,
                                                 lambda rows: [pics[r] for r in rows], rank=full[:, :32],
                                                 project=lambda f: f[:, :32])
    assert report["copies"] == 10 * 3
