"""Neighbour smoothing of class evidence (index time)."""

from __future__ import annotations

import numpy as np

from marconi.image_search.smoothing import nearest, smoothed


def test_nearest_finds_the_most_similar_others_in_order_never_itself():
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((50, 8)).astype(np.float32)
    got = nearest(vectors, k=5, block=7)  # blocks smaller than the collection
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    want = np.argsort(-sims, axis=1)[:, :5]
    assert got.shape == (50, 5)
    np.testing.assert_array_equal(got, want)
    assert not (got == np.arange(50)[:, None]).any()


def test_small_collections_have_fewer_neighbours_or_none():
    assert nearest(np.eye(3, dtype=np.float32), k=5).shape == (3, 2)
    alone = nearest(np.ones((1, 4), dtype=np.float32))
    assert alone.shape == (1, 0)
    values = np.array([[0.25, 0.75]], dtype=np.float32)
    np.testing.assert_allclose(smoothed(values, alone, np.sqrt), np.sqrt(values))


def test_smoothed_is_the_mean_of_own_and_neighbours_evidence():
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.64, 0.36]], dtype=np.float32)
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [2, 1]])
    got = smoothed(probs, neighbours, np.sqrt, block=3)
    roots = np.sqrt(probs)
    want = (roots + roots[neighbours].mean(axis=1)) / 2
    np.testing.assert_allclose(got, want, rtol=1e-6)
    plain = smoothed(probs, neighbours)
    np.testing.assert_allclose(plain.sum(axis=1), 1.0, rtol=1e-6)  # probabilities stay a distribution
