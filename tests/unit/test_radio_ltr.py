"""The learned radio scoring of bench/eval_radio_ltr.py: the conditional logit recovers the weights that made the
labels, and pairs whose next song is not a candidate are counted, not fitted."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import eval_radio_ltr  # noqa: E402

TRUE = np.array([3.0, -0.2])  # the weights of (f0, f1) that generate the next songs
SCALE = np.array([1.0, 5.0])  # f1 in other units: the fit standardises, its weights must come back in raw units
CANDIDATES = 40


class SyntheticFeatures:
    """Each seed has CANDIDATES candidates (rows 0..39) with two random features; seeds are numbered queries."""

    def __init__(self, queries: int, seed: int = 0):
        """Draw every query's features once."""
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(queries, 2, CANDIDATES)) * SCALE[None, :, None]
        utility = np.einsum("f,qfc->qc", TRUE, self.x) + rng.gumbel(size=(queries, CANDIDATES))
        self.next = utility.argmax(axis=1)  # a softmax draw with the true weights

    def query(self, rows, names, near):
        """(candidate rows, features × candidates) for one seed, as eval_radio_ltr.Features.query returns."""
        return np.arange(CANDIDATES), self.x[rows[0]]


def test_the_fit_recovers_the_generating_weights_and_counts_unreachable_next_songs():
    feats = SyntheticFeatures(3000)
    reachable = [(q, int(feats.next[q])) for q in range(2400)]
    unreachable = [(q, CANDIDATES + 5) for q in range(2400, 3000)]  # next song outside the candidates
    weights, coverage = eval_radio_ltr.fit_weights(feats, reachable + unreachable, ("f0", "f1"), near=0, l2=0.0)
    assert abs(coverage - 0.8) < 1e-9
    assert abs(weights["f0"] - TRUE[0]) < 0.3
    assert abs(weights["f1"] - TRUE[1]) < 0.04
    assert abs(weights["f1"] / weights["f0"] - TRUE[1] / TRUE[0]) < 0.01


def test_l2_shrinks_the_weights():
    feats = SyntheticFeatures(1000, seed=1)
    pairs = [(q, int(feats.next[q])) for q in range(1000)]
    free, _ = eval_radio_ltr.fit_weights(feats, pairs, ("f0", "f1"), near=0, l2=0.0)
    shrunk, _ = eval_radio_ltr.fit_weights(feats, pairs, ("f0", "f1"), near=0, l2=0.5)
    assert abs(shrunk["f0"]) < 0.5 * abs(free["f0"])
