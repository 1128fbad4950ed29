"""PCA for the indexed image column: serialisation, unit-length projections, orthonormal components, the dims cap."""

from __future__ import annotations

import numpy as np
import pytest

from marconi.image_search.pca import PCA


def _data(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.1, d)  # distinct variances, so the components are well defined
    return (rng.normal(size=(n, d)) * scales + rng.normal(size=d)).astype(np.float32)


def test_round_trip_through_bytes():
    x = _data(200, 40)
    pca = PCA.fit(x, 16)
    again = PCA.from_bytes(pca.to_bytes())
    assert again.mean.dtype == np.float32 and again.components.dtype == np.float32
    assert np.array_equal(again.mean, pca.mean) and np.array_equal(again.components, pca.components)
    assert np.array_equal(again.transform(x), pca.transform(x))


def test_projections_are_unit_length():
    x = _data(120, 30)
    y = PCA.fit(x, 10).transform(x)
    assert y.shape == (120, 10)
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    one = PCA.fit(x, 10).transform(x[0])  # a single vector gives one row
    assert one.shape == (1, 10) and np.allclose(one[0], y[0])


def test_components_are_orthonormal_and_ordered_by_variance():
    x = _data(300, 25)
    pca = PCA.fit(x, 12)
    gram = pca.components @ pca.components.T
    assert np.allclose(gram, np.eye(12), atol=1e-5)
    variances = ((x - pca.mean) @ pca.components.T).var(axis=0)
    assert np.all(np.diff(variances) <= 1e-6)
    assert np.allclose(pca.mean, x.mean(axis=0), atol=1e-5)


@pytest.mark.parametrize("n, d, asked, kept", [
    (500, 300, 150, 100),  # cube holds at most 100 dimensions
    (500, 300, 100, 100),
    (30, 300, 100, 30),    # no more components than rows
    (500, 20, 100, 20),    # nor than input dimensions
    (500, 300, 7, 7),
])
def test_dims_are_capped(n, d, asked, kept):
    pca = PCA.fit(_data(n, d), asked)
    assert pca.dims == kept == pca.components.shape[0]
    assert pca.transform(_data(3, d, seed=1)).shape == (3, kept)


def test_projection_keeps_neighbours_of_clustered_data():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, 64)) * 5
    x = np.vstack([c + rng.normal(size=(20, 64)) for c in centres]).astype(np.float32)
    labels = np.repeat(np.arange(5), 20)
    y = PCA.fit(x, 8).transform(x)
    sims = y @ y.T
    np.fill_diagonal(sims, -np.inf)
    assert (labels[sims.argmax(axis=1)] == labels).mean() == 1.0
