"""Synthetic labelled feature rows for the learned-metric tests: labels that differ along a few directions, hidden
under larger noise shared by all (so the encoder's own space ranks poorly and a learned metric can do better)."""

from __future__ import annotations

import numpy as np


def hidden_labels(seed: int = 0, labels: int = 5, per: int = 20, dims: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Return (rows (labels * per, dims), their labels "l0", "l1", ...)."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((labels, dims))
    centres[:, :labels] = 2.0 * np.eye(labels)
    noise = rng.standard_normal((labels * per, dims)) * np.r_[np.full(labels, 0.4), np.full(dims - labels, 3.0)]
    return centres.repeat(per, axis=0) + noise, np.repeat([f"l{i}" for i in range(labels)], per)
