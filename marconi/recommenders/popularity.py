"""The popularity baseline: the most played songs, whatever the seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marconi.recommenders.counts import PlaylistCounts


class Popularity:
    """Recommends the songs that appear in the most playlist slots."""

    name = "popularity"

    def __init__(self, counts: PlaylistCounts):
        """Rank once, by play count (ties in first-seen order)."""
        self.keys = counts.keys
        self.order = np.argsort(-counts.popularity, kind="stable")

    def recommend(self, seeds: Sequence[str], k: int) -> list[str]:
        """The k most played songs, seeds left out."""
        s = set(seeds)
        return [self.keys[i] for i in self.order[: k + len(s)] if self.keys[i] not in s][:k]
