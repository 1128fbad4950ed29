"""Recommenders: seeds in, ranked track keys out.

Every recommender answers the same question, ``recommend(seeds, k) -> [track key, ...]`` (best first, seeds left
out), which is all the offline evaluation needs:

* :class:`marconi.recommenders.song2vec.Song2VecRadio`: Marconi's radio, through the served path (the SQL
  function ``radio()`` in Postgres; the API's ``POST /api/radio`` answers with :func:`song2vec.radio`);
* :class:`marconi.recommenders.cooccurrence.Cooccurrence`: songs most often near the seeds in playlists;
* :class:`marconi.recommenders.popularity.Popularity`: the most played songs.

The baselines share one :class:`marconi.recommenders.counts.PlaylistCounts` built from the playlists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Recommender(Protocol):
    """Anything that turns seed track keys into ``k`` recommended track keys."""

    name: str

    def recommend(self, seeds: Sequence[str], k: int) -> list[str]:
        """Return up to ``k`` track keys, best first, without the seeds."""
        ...
