"""Marconi's radio: the SQL function radio() over the serving song2vec vectors, asked in one statement."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from marconi.db import songs as songs_db
from marconi.errors import MarconiError
from marconi.recommenders.request import RadioRequest
from marconi.recommenders.steps import NoSongModel, model_run_of, playlist_items, split_seeds


def radio(conn: sa.Connection, req: RadioRequest, ann: str = "auto", ef_search: int = 400) -> dict:
    """Answer a radio request: the playlist, the seeds used and ignored, and the one model run it comes from.

    ``ann`` picks the kNN index: "auto" (HNSW when the serving run has it, else the exact cube GiST index),
    "hnsw" (refuse when there is no HNSW index) or "cube".
    """
    answer = songs_db.radio(conn, req.seeds, req.size, req.max_per_artist, req.variety, exact=ann == "cube",
                            ef_search=ef_search, exclude=req.exclude)
    if not answer["serving"]:
        raise NoSongModel("no song model is serving yet: run `marconi train songs`")
    if ann == "hnsw" and not answer["hnsw"]:
        raise NoSongModel("MARCONI_ANN=hnsw but song_vectors has no HNSW index (is pgvector installed?)")
    known, ignored = split_seeds(answer["seeds"])
    playlist = playlist_items(answer["playlist"], req.variety)
    return {"seeds": [{"key": s["key"], "title": s["title"], "artist": s["artist"]} for s in known],
            "ignored_seeds": ignored, "model_run": model_run_of(known, answer["playlist"]),
            "variety": req.variety, "exclude": list(req.exclude), "size": len(playlist), "playlist": playlist}


class Song2VecRadio:
    """The served radio as a :class:`marconi.recommenders.Recommender` (for the offline evaluation)."""

    def __init__(self, conn: sa.Connection, ann: str = "auto", variety: float = 0.0, ef_search: int = 400):
        """Answer through ``conn`` with the given kNN index choice and variety."""
        self.conn, self.ann, self.variety, self.ef_search = conn, ann, variety, ef_search
        self.name = "marconi (served)" if variety == 0 else f"marconi variety {variety:g}"

    def recommend(self, seeds: Sequence[str], k: int) -> list[str]:
        """The radio's track keys; seeds the model cannot answer give []."""
        try:
            req = RadioRequest(seeds=tuple(seeds), size=k, variety=self.variety)
            return [p["key"] for p in radio(self.conn, req, self.ann, self.ef_search)["playlist"]]
        except MarconiError as exc:
            if exc.status == 404:
                return []
            raise
