"""Co-occurrence neighbours: for each song, the songs most often played within a window of it, top N only.

The radio blends song2vec scores with these counts (docs/evaluation.md, "Radio"). Only the top ``n`` neighbours
of each song are kept, so the table the radio reads grows with the catalogue (n rows a song), not with its square.
Counting is vectorised over one flat array of all playlists and done in chunks, so a million playlists never need
one Python step per pair.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse as sp


def cooccurrence_counts(playlists: Sequence[Sequence[int]], n_items: int, after: Sequence[float] = (1.0,) * 5,
                        before: Sequence[float] | None = None, chunk_pairs: int = 20_000_000) -> sp.csr_matrix:
    """Weighted counts C[a, b] of b played near a in a playlist (songs as 0..n-1 indices).

    b at d positions after a adds ``after[d - 1]``, b at d positions before a adds ``before[d - 1]`` (default: the
    same as after, so C is symmetric). With the default weights these are the ±5 counts of
    :class:`marconi.recommenders.counts.PlaylistCounts`. Counted one offset at a time over all playlists at once;
    chunks of about ``chunk_pairs`` positions bound the memory.
    """
    before = after if before is None else before
    total = sp.csr_matrix((n_items, n_items), dtype=np.float32)
    for flat, owner in _chunks(playlists, chunk_pairs):
        rows, cols, vals = [], [], []
        for d in range(1, max(len(after), len(before)) + 1):
            same = owner[:-d] == owner[d:]
            a, b = flat[:-d][same], flat[d:][same]
            for src, dst, weights in ((a, b, after), (b, a, before)):
                if d <= len(weights) and weights[d - 1]:
                    rows.append(src)
                    cols.append(dst)
                    vals.append(np.full(len(src), weights[d - 1], dtype=np.float32))
        if rows:
            r, c = np.concatenate(rows), np.concatenate(cols)
            part = sp.csr_matrix((np.concatenate(vals), (r, c)), shape=(n_items, n_items))
            part.sum_duplicates()
            total = total + part
    return total.tocsr()


def _chunks(playlists: Sequence[Sequence[int]], size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(flat song indices, playlist number of each position) for runs of whole playlists of about ``size``."""
    flat: list[Sequence[int]] = []
    owner: list[np.ndarray] = []
    held = 0
    for number, playlist in enumerate(playlists):
        flat.append(playlist)
        owner.append(np.full(len(playlist), number, dtype=np.int64))
        held += len(playlist)
        if held >= size:
            yield np.concatenate([np.asarray(p, dtype=np.int64) for p in flat]), np.concatenate(owner)
            flat, owner, held = [], [], 0
    if flat:
        yield np.concatenate([np.asarray(p, dtype=np.int64) for p in flat]), np.concatenate(owner)


def top_neighbours(counts: sp.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(song, neighbour, weight) arrays: each song's ``n`` most co-occurring other songs.

    The weight is the count divided by the song's total count, so a seed's neighbours sum to at most 1 and a
    song played everywhere does not outweigh the seeds' own habits. Ties keep the lower index.
    """
    counts = counts.tocsr()
    counts.setdiag(0)
    counts.eliminate_zeros()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    src, dst, wts = [], [], []
    for i in range(counts.shape[0]):
        start, end = counts.indptr[i], counts.indptr[i + 1]
        if start == end:
            continue
        cols, vals = counts.indices[start:end], counts.data[start:end]
        if len(vals) > n:
            keep = np.lexsort((cols, -vals))[:n]
            cols, vals = cols[keep], vals[keep]
        src.append(np.full(len(cols), i, dtype=np.int64))
        dst.append(cols.astype(np.int64))
        wts.append((vals / totals[i]).astype(np.float32))
    if not src:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(src), np.concatenate(dst), np.concatenate(wts)

