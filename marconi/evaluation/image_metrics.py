"""Which distance ranks the collection's photos best: a leave-one-out comparison on the serving run's own vectors.

Each labelled image is a query against all the others (itself left out); P@1 and P@10 count neighbours with its
label. The metrics compared:

- ``cosine``: of the full encoder vectors;
- ``euclidean``: of the full vectors as stored. They are L2-normalised, so this ranks exactly as cosine does
  (|a - b|² = 2 - 2 cos): it is listed to show that, not as a separate choice;
- ``l1``: Manhattan distance of the full vectors;
- ``whitened``: cosine after PCA whitening to ``whiten_dims`` components fitted on the collection (each component
  scaled to unit variance, which lifts the rarer directions);
- ``served``: Euclidean distance in the serving run's PCA space, which is what the cube index ranks by.

Choosing one metric is a decision taken on data, so the figures are also given on two halves of the labels (the
even- and odd-indexed labels in sorted order): choose on one, read the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.spatial.distance import cdist

METRICS = ("cosine", "euclidean", "l1", "whitened", "served")
BLOCK = 256  # queries per distance block


def whiten(x: np.ndarray, dims: int) -> np.ndarray:
    """Return rows of ``x`` PCA-whitened to ``dims`` components fitted on ``x`` itself, L2-normalised."""
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    dims = min(dims, len(s))
    y = centred @ vt[:dims].T / np.maximum(s[:dims], 1e-12)
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def nearest(x: np.ndarray, queries: np.ndarray, metric: str, k: int) -> np.ndarray:
    """Return the (len(queries), k) indices of each query row's nearest rows of ``x`` under ``metric`` (a scipy
    cdist name), the query row itself left out."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), BLOCK):
        rows = queries[start:start + BLOCK]
        dist = cdist(x[rows], x, metric=metric)
        dist[np.arange(len(rows)), rows] = np.inf
        top = np.argpartition(dist, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(dist, top, axis=1), axis=1, kind="stable")
        out[start:start + BLOCK] = np.take_along_axis(top, order, axis=1)
    return out


def compare(full: np.ndarray, labels: Sequence[str | None], metrics: Sequence[str] = METRICS,
            served: Callable[[np.ndarray], np.ndarray] | None = None, whiten_dims: int = 256, k: int = 10,
            sample: int = 2000, seed: int = 0, may_ask: np.ndarray | None = None) -> dict:
    """Return {metric: {"P@1", "P@10", "P@1 even labels", ..., "P@10 odd labels"}} and how many queries were asked.

    ``full``: the stored full vectors; ``labels``: one per row (unlabelled rows are never queries but stay in the
    index); ``served``: the serving run's PCA transform, for the "served" metric; ``sample``: at most this many
    labelled rows are queries (chosen with ``seed``), all rows are searched; ``may_ask``: a mask of the rows that may
    be queries (e.g. not those a learned metric was fitted on), all by default.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    labels_a = np.array([lab if lab is not None else "" for lab in labels], dtype=object)
    labelled = np.flatnonzero(labels_a != "")
    counts = {lab: int((labels_a == lab).sum()) for lab in set(labels_a[labelled])}
    queries = np.array([i for i in labelled if counts[labels_a[i]] > 1 and (may_ask is None or may_ask[i])],
                       dtype=np.int64)
    if len(counts) < 2 or not len(queries):
        raise ValueError("comparing metrics needs labelled images: at least two labels, each on two images or more")
    if len(queries) > sample:
        queries = np.sort(np.random.default_rng(seed).choice(queries, sample, replace=False))
    order = sorted(counts)
    even = np.array([order.index(labels_a[i]) % 2 == 0 for i in queries])
    spaces = {
        "cosine": (full, "cosine"), "euclidean": (full, "euclidean"), "l1": (full, "cityblock"),
        "whitened": (lambda: whiten(full, whiten_dims), "cosine"),
        "served": (lambda: served(full), "euclidean") if served is not None else (None, None),
    }
    out: dict = {"queries": int(len(queries)), "labels": len(counts), "images": int(len(full))}
    for metric in metrics:
        space, name = spaces[metric]
        if space is None:
            continue
        x = space() if callable(space) else space
        hits = labels_a[nearest(x, queries, name, min(k, len(full) - 1))] == labels_a[queries][:, None]
        p1, p10 = hits[:, 0], hits[:, :k].mean(axis=1)
        out[metric] = {"P@1": round(float(p1.mean()), 4), f"P@{k}": round(float(p10.mean()), 4)}
        for half, mask in (("even", even), ("odd", ~even)):
            if mask.any():
                out[metric][f"P@1 {half} labels"] = round(float(p1[mask].mean()), 4)
                out[metric][f"P@{k} {half} labels"] = round(float(p10[mask].mean()), 4)
    return out
