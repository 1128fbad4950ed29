"""Distance metrics compared leave-one-out on stored vectors (marconi.evaluation.image_metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from marconi.evaluation.image_metrics import compare, nearest, whiten


def _clusters(n_labels=6, per_label=12, dims=32, spread=0.35, seed=1):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_labels, dims))
    x = np.repeat(centres, per_label, axis=0) + spread * rng.standard_normal((n_labels * per_label, dims))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), [f"label{i}" for i in range(n_labels) for _ in range(per_label)]


def test_nearest_leaves_the_query_out_and_sorts_by_distance():
    x = np.array([[0.0], [1.0], [3.0], [10.0]])
    got = nearest(x, np.array([0, 2]), "euclidean", 2)
    assert got.tolist() == [[1, 2], [1, 0]]


def test_euclidean_ranks_unit_vectors_exactly_as_cosine_does():
    x, labels = _clusters()
    out = compare(x, labels, ["cosine", "euclidean", "l1"])
    assert out["cosine"] == out["euclidean"]
    assert out["queries"] == len(x) and out["labels"] == 6
    assert out["cosine"]["P@1"] > 0.9  # tight clusters: the nearest neighbour shares the label
    assert set(out["l1"]) == {"P@1", "P@10", "P@1 even labels", "P@10 even labels", "P@1 odd labels",
                              "P@10 odd labels"}


def test_noise_scores_near_chance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 16)).astype(np.float32)
    labels = [f"l{i % 6}" for i in range(120)]
    out = compare(x, labels, ["cosine"])
    assert out["cosine"]["P@10"] < 0.3  # chance is 19/119


def test_served_space_and_whitening():
    x, labels = _clusters()
    scrambled = compare(x, labels, ["served"], served=lambda v: np.random.default_rng(5).permutation(v))
    assert scrambled["served"]["P@1"] < 0.5  # the served transform is what gets ranked
    w = whiten(x, 8)
    assert w.shape == (len(x), 8) and np.allclose(np.linalg.norm(w, axis=1), 1.0, atol=1e-5)
    assert "served" not in compare(x, labels, ["served"])  # no served transform given: nothing to report


def test_unlabelled_rows_are_searched_but_never_asked():
    x, labels = _clusters()
    labels = [lab if i % 3 else None for i, lab in enumerate(labels)]
    assert compare(x, labels, ["cosine"])["queries"] == sum(lab is not None for lab in labels)


@pytest.mark.parametrize("labels, message", [(["a"] * 5, "at least two labels"), ([None] * 5, "labelled")])
def test_refuses_without_enough_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        compare(np.eye(5, dtype=np.float32), labels, ["cosine"])


def test_refuses_an_unknown_metric():
    x, labels = _clusters()
    with pytest.raises(ValueError, match="unknown metric 'hamming'"):
        compare(x, labels, ["hamming"])
