"""The learned metric (regularised LDA blended with the encoder space)."""

from __future__ import annotations

import numpy as np
import pytest
from hidden_labels import hidden_labels

from marconi.image_search.metric import LearnedMetric


def _data(seed=0):
    return hidden_labels(seed, labels=5, per=20)


def _p1(x, y):
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    return float((y[sims.argmax(axis=1)] == y).mean())


def test_same_label_images_come_together():
    x, y = _data()
    metric = LearnedMetric.fit(x, y, shrinkage=0.1, blend=4.0)
    plain = x / np.linalg.norm(x, axis=1, keepdims=True)
    test_x, test_y = _data(seed=1)  # new photos of the same labels
    assert _p1(metric.transform(test_x), test_y) > _p1(test_x / np.linalg.norm(test_x, axis=1, keepdims=True),
                                                       test_y) + 0.2
    assert _p1(plain, y) < 0.6


def test_transform_shape_norm_and_round_trip():
    x, y = _data()
    metric = LearnedMetric.fit(x, y)
    z = metric.transform(x)
    assert z.shape == (len(x), x.shape[1] + 4) == (len(x), metric.dims)  # 5 labels give 4 learned directions
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    again = LearnedMetric.from_bytes(metric.to_bytes())
    assert again.blend == metric.blend and np.allclose(again.transform(x[:3]), z[:3])


def test_blend_weighs_the_learned_part():
    x, y = _data()
    light, heavy = LearnedMetric.fit(x, y, blend=0.1), LearnedMetric.fit(x, y, blend=10.0)
    d = x.shape[1]
    assert np.linalg.norm(light.transform(x)[:, d:], axis=1).mean() < np.linalg.norm(heavy.transform(x)[:, d:],
                                                                                      axis=1).mean()


@pytest.mark.parametrize("labels, kwargs, message", [
    (["a"] * 6, {}, "at least two labels"),
    (["a", "b", "c", "d", "e", "f"], {}, "two images or more"),
    (["a", "a", "a", "b", "b", "b"], {"shrinkage": 2.0}, "shrinkage"),
    (["a", "a", "a", "b", "b", "b"], {"blend": 0.0}, "blend"),
])
def test_refuses_what_it_cannot_learn_from(labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        LearnedMetric.fit(np.random.default_rng(0).standard_normal((6, 4)), labels, **kwargs)
