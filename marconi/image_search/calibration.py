"""How sure an image answer is: features of the answer list, a logistic calibration fitted at build time, AUC.

The confidence is P(the top-1 label is right), fitted on held-out queries drawn from the indexed set, some of them
standing for photos of something the collection does not hold (see :func:`calibrate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confidence_features(sims: np.ndarray, labels: list) -> np.ndarray:
    """Features of one answer list: top-1 similarity, its margin over the 10th, and top-10 label agreement."""
    if len(sims) == 0:
        return np.zeros(3)
    top = sims[0]
    tenth = sims[min(9, len(sims) - 1)]
    agree = np.mean([lab == labels[0] for lab in labels[:10]]) if labels[0] is not None else 0.0
    return np.array([top, top - tenth, agree], dtype=np.float64)


@dataclass
class Calibration:
    """Logistic model turning confidence features into P(top-1 label is right)."""

    weights: np.ndarray
    bias: float

    def __call__(self, feats: np.ndarray) -> float:
        """Return the calibrated confidence in [0, 1]."""
        return float(1.0 / (1.0 + np.exp(-(feats @ self.weights + self.bias))))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, l2: float = 0.1, iters: int = 100) -> Calibration:
        """Fit by Newton's method on (features, right/wrong) pairs."""
        xb = np.hstack([x, np.ones((len(x), 1))])
        w = np.zeros(xb.shape[1])
        for _ in range(iters):
            p = 1 / (1 + np.exp(-xb @ w))
            grad = xb.T @ (p - y) + l2 * w
            hess = (xb * (p * (1 - p))[:, None]).T @ xb + l2 * np.eye(len(w))
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(w[:-1], float(w[-1]))

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {"weights": self.weights.tolist(), "bias": self.bias}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """Inverse of to_dict."""
        return cls(np.asarray(d["weights"], dtype=np.float64), float(d["bias"]))


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve: P(score of a right answer > score of a wrong one); None if one side is empty."""
    pos, neg = scores[positive.astype(bool)], scores[~positive.astype(bool)]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def rounded(x: float | None) -> float | None:
    """Return ``x`` rounded to 4 decimals (None stays None)."""
    return None if x is None else round(x, 4)


def calibrate(full: np.ndarray, labels: list, k: int = 10, sample: int = 2000, seed: int = 0,
              unknown_share: float = 0.25, rank: np.ndarray | None = None) -> tuple[dict, dict]:
    """Calibrate the confidence on held-out queries drawn from the indexed set; return (calibration, report).

    Each sampled image queries the index with only itself left out (right when the top-1 label matches); a share
    ``unknown_share`` of them also queries it with its whole class left out, which stands for a photo of something
    the collection does not hold (always wrong). The share is the prior the confidence assumes: about one query in
    five shows something the collection lacks. The report gives leave-one-out P@1 and P@10, and the AUC with
    which the confidence separates right from wrong top-1 answers over both kinds of query.

    Answers are ranked by ``rank`` (the served vectors, e.g. the PCA projections; default ``full``) and described
    by their similarities in ``full``, as the search does.
    """
    rng = np.random.default_rng(seed)
    n = len(full)
    idx = rng.choice(n, size=min(sample, n), replace=False)
    lab = np.array([str(x) for x in labels])
    sims = full[idx] @ full.T
    order = sims if rank is None else rank[idx] @ rank.T
    feats, right, p10, kind = [], [], [], []
    n_unknown = int(round(len(idx) * unknown_share))
    for row, i in enumerate(idx):
        for leave_class in ((False, True) if row < n_unknown else (False,)):
            s = order[row].copy()
            s[i] = -np.inf
            if leave_class:
                if labels[i] is None:
                    continue
                s[lab == lab[i]] = -np.inf
            top = np.argpartition(-s, k)[:k]
            top = top[np.argsort(-s[top])]
            labs = [labels[j] for j in top]
            feats.append(confidence_features(sims[row][top], labs))
            right.append(labels[i] is not None and labs[0] == labels[i])
            kind.append(leave_class)
            if not leave_class:
                p10.append(np.mean([lab_ == labels[i] for lab_ in labs]))
    x, y, kind = np.array(feats), np.array(right, dtype=float), np.array(kind)
    if 0 < y.sum() < len(y):
        cal = Calibration.fit(x, y)
    else:  # unlabelled sets: fall back to the top-1 similarity
        cal = Calibration(np.array([10.0, 0.0, 0.0]), -7.0)
    conf = np.array([cal(f) for f in x])
    loo = ~kind
    report = {"queries": int(loo.sum()), "P@1": round(float(y[loo].mean()), 4), "P@10": round(float(np.mean(p10)), 4),
              "auc_confidence": rounded(auc(conf, y)),
              "auc_confidence_leave_one_out": rounded(auc(conf[loo], y[loo])),
              "auc_top1_similarity": rounded(auc(x[:, 0], y)),
              "mean_confidence_right": round(float(conf[y == 1].mean()), 4) if (y == 1).any() else None,
              "mean_confidence_wrong": round(float(conf[y == 0].mean()), 4) if (y == 0).any() else None,
              "mean_confidence_unknown_class": round(float(conf[kind].mean()), 4) if kind.any() else None}
    return cal.to_dict(), report
