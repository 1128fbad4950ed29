"""The item co-occurrence baseline: songs most often played near the seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marconi.recommenders.counts import PlaylistCounts
from marconi.recommenders.popularity import Popularity


class Cooccurrence:
    """Recommends by the number of times a song sits within the counting window of a seed in a playlist."""

    name = "co-occurrence ±5"

    def __init__(self, counts: PlaylistCounts):
        """Use the counts' co-occurrence matrix; popularity breaks ties and fills in for unknown seeds."""
        self.counts = counts
        self.popular = Popularity(counts)
        self.tie_break = counts.popularity / (max(counts.popularity.max(initial=0), 1) * 1e3)

    def recommend(self, seeds: Sequence[str], k: int) -> list[str]:
        """The songs most often within the window of the seeds, seeds left out."""
        c = self.counts
        idx = [c.index[s] for s in seeds if s in c.index]
        if not idx:
            return self.popular.recommend(seeds, k)
        scores = np.asarray(c.cooc[idx].sum(axis=0)).ravel() + self.tie_break
        scores[idx] = -np.inf
        top = np.argpartition(-scores, min(k + len(idx), len(scores) - 1))[: k + len(idx)]
        top = top[np.argsort(-scores[top], kind="stable")]
        s = set(seeds)
        return [c.keys[i] for i in top if c.keys[i] not in s][:k]
