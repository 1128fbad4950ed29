"""Which learned-metric setting to serve, chosen on the photos the metric may be fitted on, and only on them.

``marconi train images`` fits on some photos of each label (``--fit-per-label``) and leaves the others as honest
queries. Its ``shrinkage`` and ``blend`` are chosen here without looking at those queries: the fit photos of each
label are split in two (the first half in id order, and the rest); a metric fitted on one half ranks the other half's
photos against all the fit photos, in the PCA space the index uses, then the halves swap. The setting with the
highest mean P@1 + P@k wins; the encoder's own space is a candidate too, so a metric that does not help loses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from marconi.evaluation.image_metrics import nearest
from marconi.image_search.metric import LearnedMetric
from marconi.image_search.pca import PCA

BLENDS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
SHRINKAGES = (0.1, 0.3, 0.6)


def first_of_each_label(labels: np.ndarray, mask: np.ndarray, keep: int | None = None) -> np.ndarray:
    """Return a mask of the first ``keep`` rows (in row order) of each label among ``mask``'s rows; ``keep`` None:
    the first half, rounded up."""
    out = np.zeros(len(labels), dtype=bool)
    for label in set(labels[mask]):
        rows = np.flatnonzero(mask & (labels == label))
        out[rows[: (len(rows) + 1) // 2 if keep is None else keep]] = True
    return out


def _scores(space: np.ndarray, labels: np.ndarray, queries: np.ndarray, pca_dims: int, k: int) -> np.ndarray:
    """(P@1, P@k) of ``queries`` ranking every other row, Euclidean in ``space``'s PCA (as the cube index ranks)."""
    reduced = PCA.fit(space, pca_dims).transform(space)
    hits = labels[nearest(reduced, queries, "euclidean", k)] == labels[queries][:, None]
    return np.array([hits[:, 0].mean(), hits.mean()])


def choose_setting(x: np.ndarray, labels: Sequence[str], blends: Sequence[float] = BLENDS,
                   shrinkages: Sequence[float] = SHRINKAGES, pca_dims: int = 100, k: int = 10) -> dict:
    """Return the validated choice ``{"shrinkage", "blend", "validation": [...]}`` for the fit rows ``x``.

    ``shrinkage`` and ``blend`` are None when the encoder's own space scored best (then no metric should be
    served). ``validation`` lists every candidate's mean P@1 and P@k over the two folds, best first.
    """
    x = np.asarray(x, dtype=np.float32)
    labels = np.asarray(labels, dtype=object)
    first = first_of_each_label(labels, np.ones(len(labels), dtype=bool))
    folds = [(first, np.flatnonzero(~first)), (~first, np.flatnonzero(first))]
    plain = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    base = np.mean([_scores(plain, labels, queries, pca_dims, k) for _, queries in folds], axis=0)
    rows = [{"shrinkage": None, "blend": None, "P@1": base[0], f"P@{k}": base[1]}]
    sums = {(s, b): np.zeros(2) for s in shrinkages for b in blends}
    for fit, queries in folds:
        for shrinkage in shrinkages:
            metric = LearnedMetric.fit(x[fit], labels[fit], shrinkage, blend=1.0)
            for blend in blends:
                space = dataclasses.replace(metric, blend=float(blend)).transform(x)
                sums[shrinkage, blend] += _scores(space, labels, queries, pca_dims, k)
    rows += [{"shrinkage": s, "blend": b, "P@1": v[0] / 2, f"P@{k}": v[1] / 2} for (s, b), v in sums.items()]
    for row in rows:
        row["P@1"], row[f"P@{k}"] = round(float(row["P@1"]), 4), round(float(row[f"P@{k}"]), 4)
    rows.sort(key=lambda r: -(r["P@1"] + r[f"P@{k}"]))
    return {"shrinkage": rows[0]["shrinkage"], "blend": rows[0]["blend"], "queries": int(len(labels)),
            "validation": rows}
