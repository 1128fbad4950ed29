"""Artist and tag query vectors pooled from song vectors (pure numpy, no database).

An artist's (a tag's) vector is the unit mean of the unit input vectors of its songs in the model, so it lives in
the same space as a seed song's query vector and radio() answers it like a seed. Measured against an artist-only
song2vec and a play-weighted mean in docs/evaluation.md ("Artist and tag radio", bench/eval_artist_radio.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence

import numpy as np


def pooled_vectors(ids: Sequence[int], qv: np.ndarray, memberships: Iterable[tuple[int, Hashable]],
                   weights: np.ndarray | None = None) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
    """Return (group keys, unit pooled vectors, songs per group) for ``(track id, group key)`` memberships.

    ``qv`` holds the unit query vectors of the tracks ``ids`` (row i ↔ ids[i]); tracks not in ``ids`` are skipped.
    ``weights`` (one per row of ``qv``) weight each song's vector; the default is a plain mean.
    """
    row_of = {int(t): i for i, t in enumerate(ids)}
    rows: dict[Hashable, list[int]] = defaultdict(list)
    for track_id, key in memberships:
        row = row_of.get(int(track_id))
        if row is not None:
            rows[key].append(row)
    keys = list(rows)
    out = np.zeros((len(keys), qv.shape[1]), dtype=np.float64)
    counts = np.zeros(len(keys), dtype=np.int64)
    for g, key in enumerate(keys):
        r = np.asarray(rows[key])
        w = np.ones(len(r)) if weights is None else weights[r]
        out[g] = (qv[r] * w[:, None]).sum(axis=0)
        counts[g] = len(r)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return keys, out / np.maximum(norms, 1e-12), counts
