"""How sure an image answer is: features of the answer list, a logistic calibration fitted at build time, AUC.

The confidence is fitted on held-out queries drawn from the indexed set, some of them standing for photos of
something the collection does not hold (see :func:`calibrate`). With labels it is P(the top-1 label is right);
without them (:func:`calibrate_self_supervised`) it is P(the top-1 is the photo asked about, or a version of it),
learnt from altered copies of indexed images.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageStat

LABELS, SELF_SUPERVISED, FIXED = "labels", "self-supervised", "fixed"

Encode = Callable[[list[Image.Image]], np.ndarray]
"""Encodes PIL images into L2-normalised full feature rows, as the run's encoder encodes a query."""
Originals = Callable[[Sequence[int]], list[Image.Image | None]]
"""Returns the decoded images of the given rows of the indexed set (None for one that cannot be read)."""


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
    def fit(cls, x: np.ndarray, y: np.ndarray, l2: float = 0.1, iters: int = 100,
            sample_weight: np.ndarray | None = None) -> Calibration:
        """Fit by Newton's method on (features, right/wrong) pairs, each weighted by ``sample_weight`` (default 1)."""
        xb = np.hstack([x, np.ones((len(x), 1))])
        w = np.zeros(xb.shape[1])
        for _ in range(iters):
            p = 1 / (1 + np.exp(-xb @ w))
            if sample_weight is None:
                grad = xb.T @ (p - y) + l2 * w
                hess = (xb * (p * (1 - p))[:, None]).T @ xb + l2 * np.eye(len(w))
            else:
                grad = xb.T @ (sample_weight * (p - y)) + l2 * w
                hess = (xb * (sample_weight * p * (1 - p))[:, None]).T @ xb + l2 * np.eye(len(w))
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


FALLBACK = Calibration(np.array([10.0, 0.0, 0.0]), -7.0)
"""A fixed logistic on the top-1 similarity, for a set that can be calibrated neither by labels nor by copies."""


def labelled_enough(labels: Sequence, min_images: int = 10) -> bool:
    """True when labels can tell right answers from wrong: at least two labels, and at least ``min_images`` and half
    of all images under a label that another image shares (so that leaving one out can still find its label)."""
    counts: dict = {}
    for lab in labels:
        if lab is not None:
            counts[lab] = counts.get(lab, 0) + 1
    usable = sum(c for c in counts.values() if c >= 2)
    return len(counts) >= 2 and usable >= max(min_images, len(labels) / 2)


def calibrate(full: np.ndarray, labels: list, k: int = 10, sample: int = 2000, seed: int = 0,
              unknown_share: float = 0.25, rank: np.ndarray | None = None, encode: Encode | None = None,
              originals: Originals | None = None, project: Callable[[np.ndarray], np.ndarray] | None = None,
              copies: int = 200, query_rows: np.ndarray | None = None) -> tuple[dict, dict]:
    """Calibrate the confidence on held-out queries drawn from the indexed set; return (calibration, report).

    With labels (:func:`labelled_enough`), each sampled image queries the index with only itself left out (right
    when the top-1 label matches); a share ``unknown_share`` of them also queries it with its whole class left out,
    which stands for a photo of something the collection does not hold (always wrong). The share is the prior the
    confidence assumes: about one query in five shows something the collection lacks. The report gives
    leave-one-out P@1 and P@10, and the AUC with which the confidence separates right from wrong top-1 answers over
    both kinds of query.

    Without usable labels (or when they give no wrong answer, or no right one), and given ``encode`` and
    ``originals``, the queries are altered copies of indexed images instead (:func:`calibrate_self_supervised`,
    ``copies`` of them). Given neither, a fixed logistic on the top-1 similarity is used. Both the calibration and
    the report say which was used (``method``: "labels", "self-supervised" or "fixed"); the report also gives its
    AUC (``auc_confidence``). Neither holds NaN or infinity: they are stored as JSON.

    Answers are ranked by ``rank`` (the served vectors, e.g. the PCA projections; default ``full``) and described
    by their similarities in ``full``, as the search does; ``project`` maps full feature rows of new queries to
    ``rank`` rows (the PCA's transform). ``query_rows`` limits the labelled queries to those rows (e.g. the images a
    learned metric was not fitted on, which it would find too easily); default: any row.
    """
    can_alter = encode is not None and originals is not None
    if labelled_enough(labels) or not can_alter:
        cal, report = _calibrate_by_labels(full, labels, k, sample, seed, unknown_share, rank, query_rows)
        if cal is not None or not can_alter:
            return _described(cal, LABELS, report)
    return calibrate_self_supervised(full, labels, encode, originals, rank=rank, project=project, k=k,
                                     copies=copies, seed=seed, unknown_share=unknown_share)


def _described(cal: Calibration | None, method: str, report: dict) -> tuple[dict, dict]:
    """Return (calibration dict, report) naming the method; no calibration (degenerate fit) means the fallback."""
    if cal is None or not (np.all(np.isfinite(cal.weights)) and np.isfinite(cal.bias)):
        cal, method = FALLBACK, FIXED
    return {**cal.to_dict(), "method": method}, {"method": method, **{key: _finite(v) for key, v in report.items()}}


def _finite(x):
    """Return ``x``, or None for a NaN or infinite float (JSON has neither)."""
    return None if isinstance(x, float) and not np.isfinite(x) else x


def _calibrate_by_labels(full: np.ndarray, labels: list, k: int, sample: int, seed: int, unknown_share: float,
                         rank: np.ndarray | None, query_rows: np.ndarray | None = None,
                         ) -> tuple[Calibration | None, dict]:
    """The labelled calibration of :func:`calibrate`; the calibration is None when every answer is right, or none."""
    rng = np.random.default_rng(seed)
    n = len(full)
    pool = np.arange(n) if query_rows is None else np.asarray(query_rows, dtype=int)
    idx = rng.choice(pool, size=min(sample, len(pool)), replace=False)
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
            top = np.argpartition(-s, min(k, n - 1))[:k]
            top = top[np.argsort(-s[top])]
            top = top[np.isfinite(s[top])]  # fewer than k candidates left (tiny sets)
            labs = [labels[j] for j in top]
            feats.append(confidence_features(sims[row][top], labs))
            right.append(labels[i] is not None and len(labs) > 0 and labs[0] == labels[i])
            kind.append(leave_class)
            if not leave_class:
                hits = [lab_ == labels[i] and labels[i] is not None for lab_ in labs]
                p10.append(np.mean(hits) if hits else 0.0)
    x, y, kind = np.array(feats), np.array(right, dtype=float), np.array(kind)
    cal = Calibration.fit(x, y) if 0 < y.sum() < len(y) else None
    conf = np.array([(cal or FALLBACK)(f) for f in x])
    loo = ~kind
    report = {"queries": int(loo.sum()), "P@1": round(float(y[loo].mean()), 4), "P@10": round(float(np.mean(p10)), 4),
              "auc_confidence": rounded(auc(conf, y)),
              "auc_confidence_leave_one_out": rounded(auc(conf[loo], y[loo])),
              "auc_top1_similarity": rounded(auc(x[:, 0], y)),
              "mean_confidence_right": round(float(conf[y == 1].mean()), 4) if (y == 1).any() else None,
              "mean_confidence_wrong": round(float(conf[y == 0].mean()), 4) if (y == 0).any() else None,
              "mean_confidence_unknown_class": round(float(conf[kind].mean()), 4) if kind.any() else None}
    return cal, report


# ------------------------------------------------------------------------------------------------ without labels
def alter(img: Image.Image, rng: np.random.Generator, area: tuple[float, float] = (0.6, 0.85)) -> Image.Image:
    """Return an altered copy of ``img``, as another photo of the same picture might be: a random crop of ``area``
    of it (aspect ratio 3:4 to 4:3), maybe mirrored, slightly rotated or recoloured, resized (longer side 160-480
    px) and re-encoded as JPEG (quality 60-90)."""
    img = img.convert("RGB")
    w, h = img.size
    a, ratio = rng.uniform(*area), np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(np.clip(round(w * np.sqrt(a * ratio)), 1, w))
    ch = int(np.clip(round(h * np.sqrt(a / ratio)), 1, h))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.3:
        fill = tuple(int(v) for v in ImageStat.Stat(img).mean)
        img = img.rotate(float(rng.uniform(-10, 10)), resample=Image.Resampling.BICUBIC, fillcolor=fill)
    if rng.random() < 0.5:
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            img = enhance(img).enhance(float(rng.uniform(0.8, 1.2)))
    scale = rng.uniform(160, 480) / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(rng.integers(60, 91)))
    out = Image.open(io.BytesIO(buf.getvalue()))
    out.load()
    return out.convert("RGB")


def _top(s: np.ndarray, k: int) -> np.ndarray:
    """Return the indices of the (at most) k largest finite scores of ``s``, largest first."""
    finite = np.flatnonzero(np.isfinite(s))
    if len(finite) > k:
        finite = finite[np.argpartition(-s[finite], k)[:k]]
    return finite[np.argsort(-s[finite], kind="stable")]


def calibrate_self_supervised(full: np.ndarray, labels: list, encode: Encode, originals: Originals,
                              rank: np.ndarray | None = None,
                              project: Callable[[np.ndarray], np.ndarray] | None = None, k: int = 10,
                              copies: int = 200, seed: int = 0, unknown_share: float = 0.25,
                              duplicate: float = 0.95, chunk: int = 32) -> tuple[dict, dict]:
    """Calibrate on altered copies of indexed images, no labels needed; return (calibration, report).

    ``copies`` altered copies (:func:`alter`) of images sampled from the index (each image at most three times)
    query it twice: as it is, right when the top-1 is the copy's original, and with the original left out, which
    stands for a photo of something the collection does not hold: wrong, unless the top-1 is a near-duplicate of
    the original (full cosine ≥ ``duplicate``). The confidence is then P(the top-1 is the photo asked about, or a
    version of it). The left-out queries are weighted by ``unknown_share``, the prior :func:`calibrate` assumes
    (about one query in five shows something the collection lacks). Features are those of the search, labels
    included (constant when there are none). The report gives the share of copies that find their original first
    (``P@1``), the AUC over both kinds of query, and the seconds spent (decoding, altering, encoding).
    """
    if rank is not None and project is None:
        raise ValueError("ranking by `rank` needs `project`, which maps a query's full features to rank rows")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = len(full)
    m = min(copies, 3 * n)
    rows = np.concatenate([rng.permutation(n) for _ in range(-(-m // n))])[:m] if n else np.zeros(0, dtype=int)
    imgs, src, unreadable = [], [], 0
    for start in range(0, len(rows), chunk):
        part = [int(r) for r in rows[start:start + chunk]]
        for r, img in zip(part, originals(part), strict=True):
            if img is None:
                unreadable += 1
            else:
                imgs.append(alter(img, rng))
                src.append(r)
    q_full = np.asarray(encode(imgs), dtype=np.float32).reshape(len(imgs), -1) if imgs else np.zeros((0, 0))
    sims = q_full @ full.T if len(imgs) else np.zeros((0, n))
    order = sims if rank is None or not len(imgs) else np.asarray(project(q_full)) @ rank.T
    feats, right, kind = [], [], []
    for j, i in enumerate(src):
        for left_out in (False, True):
            s = order[j].copy()
            if left_out:
                s[i] = -np.inf
            top = _top(s, k)
            feats.append(confidence_features(sims[j][top], [labels[t] for t in top]))
            right.append(len(top) > 0 and (top[0] == i or float(full[top[0]] @ full[i]) >= duplicate))
            kind.append(left_out)
    x, y, kind = np.array(feats).reshape(-1, 3), np.array(right, dtype=float), np.array(kind, dtype=bool)
    cal = None
    if 0 < y.sum() < len(y):
        cal = Calibration.fit(x, y, sample_weight=np.where(kind, unknown_share, 1.0))
    conf = np.array([(cal or FALLBACK)(f) for f in x])
    report = {"copies": len(src), "unreadable": unreadable, "queries": len(y),
              "P@1": round(float(y[~kind].mean()), 4) if (~kind).any() else None,
              "auc_confidence": rounded(auc(conf, y)),
              "auc_top1_similarity": rounded(auc(x[:, 0], y)),
              "mean_confidence_right": round(float(conf[y == 1].mean()), 4) if (y == 1).any() else None,
              "mean_confidence_wrong": round(float(conf[y == 0].mean()), 4) if (y == 0).any() else None,
              "mean_confidence_unknown_class": round(float(conf[kind].mean()), 4) if kind.any() else None,
              "seconds": round(time.perf_counter() - t0, 2)}
    return _described(cal, SELF_SUPERVISED, report)
