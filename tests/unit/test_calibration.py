"""The image answer confidence: features of an answer list, the logistic calibration, AUC, and calibrate()."""

from __future__ import annotations

import json

import numpy as np
import pytest

from marconi.image_search.calibration import Calibration, auc, calibrate, confidence_features


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


def test_calibrate_without_labels_falls_back_to_top_similarity():
    x, _ = _clustered(classes=3, per_class=10)
    cal_dict, report = calibrate(x, [None] * len(x), sample=30)
    assert cal_dict == {"weights": [10.0, 0.0, 0.0], "bias": -7.0}
    assert report["P@1"] == 0.0
    assert report["mean_confidence_right"] is None  # never NaN: the report is stored as JSON with the run
    json.dumps(report, allow_nan=False)
