"""The exposure cap: per-song score offsets so that no song fills more than a set share of all radios.

A few hits score high against most queries of their genre, so they open most radios ("hubs"): before radio v2 one
song was in a fifth of all next-song top 10s. Penalising every song by its hubness (CSLS) or popularity costs
accuracy for every query. The cap instead lowers only the songs above it, and only by as much as it takes: each
such song leaves the radios where it only just made the top 10 and stays where it fits best. Offsets are
calibrated at training time on one-seed radios of the catalogue's songs, weighted by how often each is played (how
often it would be a seed), and stored with the run (``song_vectors.exposure``); radio() ranks by score − exposure.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

EPS = 1e-3  # co-occurrence smoothing: a song outside every seed's neighbours scores blend * ln(EPS)


def blend_scores(ip: np.ndarray, cooc: np.ndarray, blend: float) -> np.ndarray:
    """Radio scores: the song2vec score plus ``blend`` × ln(EPS + the seeds' summed co-occurrence weights).

    The served SQL function radio() computes exactly this (migration 0010); the offline research and the
    calibration use this function so the three agree.
    """
    return ip + blend * np.log(EPS + cooc) if blend else ip


def calibration_candidates(qv: np.ndarray, out: np.ndarray, weights: sp.csr_matrix, blend: float,
                           queries: np.ndarray, top: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Each query song's ``top`` best other songs and their radio scores (one-seed radios, as served).

    ``qv`` are unit input vectors, ``out`` output vectors (rows = songs), ``weights`` the co-occurrence
    neighbours (row = seed, column = candidate, csr), ``queries`` the rows used as seeds. Worked in blocks of
    about 16M scores, so a million-song catalogue needs about 128 MB at a time.
    """
    top = min(top, len(out) - 1)
    block = max(1, min(512, 2**24 // max(len(out), 1)))
    cand = np.empty((len(queries), top), dtype=np.int64)
    scores = np.empty((len(queries), top))
    for start in range(0, len(queries), block):
        rows = queries[start:start + block]
        sc = qv[rows] @ out.T
        if blend:  # ln(EPS) everywhere, raised where a seed has the song among its neighbours
            sc += blend * np.log(EPS)
            part = weights[rows].tocoo()
            sc[part.row, part.col] += blend * (np.log(EPS + part.data) - np.log(EPS))
        sc[np.arange(len(rows)), rows] = -np.inf
        best = np.argpartition(-sc, top - 1, axis=1)[:, :top]
        cand[start:start + len(rows)] = best
        scores[start:start + len(rows)] = np.take_along_axis(sc, best, axis=1)
    return cand, scores


def exposure_offsets(cand: np.ndarray, scores: np.ndarray, weights: np.ndarray, n_items: int, cap: float,
                     k: int = 10, rounds: int = 30) -> np.ndarray:
    """Per-song score offsets so that no song fills more than ``cap`` of the top ``k``s of the given queries.

    ``cand`` (queries × L song indices) and ``scores`` (the same shape) are each query's L best songs and their
    scores, ``weights`` how often each query is asked (its plays). A radio ranks by score − offset. Each round
    raises the offset of every song whose weighted share of the top ``k``s is above ``cap`` by the margin that
    brings it down to the cap (the song leaves the queries where it only just made the top ``k``, so the songs it
    suits best keep it), and rounds repeat because a song that leaves lets others in. Offsets never go negative:
    songs under the cap rank as they did.
    """
    offsets = np.zeros(n_items)
    weights = np.asarray(weights, dtype=np.float64) / max(float(np.sum(weights)), 1e-12)
    q_of = np.repeat(np.arange(cand.shape[0]), cand.shape[1])
    for _ in range(rounds):
        adjusted = scores - offsets[cand]
        order = np.argsort(-adjusted, axis=1)
        ranked = np.take_along_axis(adjusted, order, axis=1)
        inside, next_out = ranked[:, k - 1], ranked[:, k]
        in_top = adjusted >= inside[:, None]
        # how far above the line each song in a top k is: removing it lets the (k+1)-th in
        margin = np.where(in_top, adjusted - next_out[:, None], -np.inf)
        share = np.bincount(cand.ravel(), weights=(in_top * weights[:, None]).ravel(), minlength=n_items)
        over = np.flatnonzero(share > cap + 1e-12)
        if not len(over):
            break
        flat_c, flat_m, flat_w = cand.ravel(), margin.ravel(), weights[q_of]
        sel = np.isin(flat_c, over) & np.isfinite(flat_m)
        c, m, w = flat_c[sel], flat_m[sel], flat_w[sel]
        by = np.lexsort((-m, c))  # per song, largest margin first
        c, m, w = c[by], m[by], w[by]
        cum = np.cumsum(w)
        start = np.searchsorted(c, c, side="left")
        kept = cum - np.concatenate([[0.0], cum])[start]  # weighted share kept if the line is drawn here
        # for each song: the smallest margin among the queries it keeps while staying within the cap
        ok = kept <= cap + 1e-12
        raise_to = np.zeros(n_items)
        first_bad = np.full(n_items, -np.inf)
        np.maximum.at(first_bad, c[~ok], m[~ok])
        raise_to[over] = np.where(np.isfinite(first_bad[over]), first_bad[over], 0.0) + 1e-9
        offsets[over] += np.maximum(raise_to[over], 0.0)
    return offsets
