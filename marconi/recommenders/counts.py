"""Play counts and windowed co-occurrence counts of songs in playlists: what the baselines rank by."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from marconi.recommenders.neighbours import cooccurrence_counts


@dataclass(frozen=True)
class PlaylistCounts:
    """Songs indexed 0..n-1 (``keys``), how often each is played, and how often two sit within ``window``."""

    keys: list[str]
    index: dict[str, int]
    popularity: np.ndarray
    cooc: sp.csr_matrix

    @classmethod
    def from_playlists(cls, playlists: Sequence[Sequence[str]], window: int = 5) -> PlaylistCounts:
        """Count plays and ±``window`` co-occurrences in playlists given as lists of track keys."""
        keys: list[str] = []
        index: dict[str, int] = {}
        seqs = []
        for playlist in playlists:
            seq = []
            for key in playlist:
                if key not in index:
                    index[key] = len(keys)
                    keys.append(key)
                seq.append(index[key])
            seqs.append(seq)
        n = len(keys)
        popularity = np.bincount(np.fromiter((a for seq in seqs for a in seq), dtype=np.int64), minlength=n)
        cooc = cooccurrence_counts(seqs, n, after=(1.0,) * window)  # the same counting the radio's neighbours use
        return cls(keys, index, popularity, cooc)
