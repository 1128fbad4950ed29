"""Marconi's radio: the SQL function radio() over the serving song2vec vectors, asked in one statement.

One radio for every kind of start: seed songs, artist names, tag names (or a prompt naming artists and tags) are
each turned into a query vector in SQL (radio_query_vector) and answered by the same radio() function.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from marconi.db import songs as songs_db
from marconi.errors import BadRequest, MarconiError
from marconi.recommenders.prompt import parse_prompt
from marconi.recommenders.request import MAX_NAMES, RadioRequest
from marconi.recommenders.steps import (
    NeedsRetraining,
    NoSongModel,
    check_names,
    mode_variety,
    model_run_of,
    playlist_items,
    split_seeds,
)


def radio(conn: sa.Connection, req: RadioRequest, ann: str = "auto", ef_search: int = 400) -> dict:
    """Answer a radio request: the playlist, the seeds, artists and tags used (and seeds ignored), what each
    ``exclude`` entry named (``excluded``), the mode, and the one model run it comes from.

    ``ann`` picks the kNN index: "auto" (HNSW when the serving run has it, else the exact cube GiST index),
    "hnsw" (refuse when there is no HNSW index) or "cube". Unknown artists or tags are a 404 naming the closest.
    """
    artists, tags, mode = resolve_names(req)
    answer = songs_db.radio(conn, req.seeds, req.size, req.max_per_artist, req.variety, exact=ann == "cube",
                            ef_search=ef_search, exclude=req.exclude, artists=artists, tags=tags, mode=mode)
    if not answer["serving"]:
        raise NoSongModel("no song model is serving yet: run `marconi train songs`")
    if ann == "hnsw" and not answer["hnsw"]:
        raise NoSongModel("MARCONI_ANN=hnsw but song_vectors has no HNSW index (is pgvector installed?)")
    if (artists and not answer["has_artist_vectors"]) or (tags and not answer["has_tag_vectors"]):
        raise NeedsRetraining("the serving song model was trained before artist and tag radio: run `marconi train "
                              "songs` once to start radios from artists or tags")
    found_artists = check_names("artist", answer["artists"])
    found_tags = check_names("tag", answer["tags"])
    if req.seeds and not (artists or tags):
        known, ignored = split_seeds(answer["seeds"])
    else:
        known = [s for s in answer["seeds"] if s["run_id"] is not None]
        ignored = [s["key"] for s in answer["seeds"] if s["run_id"] is None]
    playlist = playlist_items(answer["playlist"], mode_variety(mode, req.variety))
    return {"seeds": [{"key": s["key"], "title": s["title"], "artist": s["artist"]} for s in known],
            "ignored_seeds": ignored,
            "artists": [{"name": a["name"], "songs": a["songs"]} for a in found_artists],
            "tags": [{"tag": t["name"], "songs": t["songs"]} for t in found_tags], "mode": mode,
            "model_run": model_run_of(known + [{"run_id": answer["run_id"]}], answer["playlist"]),
            "variety": req.variety, "exclude": list(req.exclude), "excluded": answer["excluded"],
            "size": len(playlist), "playlist": playlist}


def resolve_names(req: RadioRequest) -> tuple[list[str], list[str], str]:
    """The request's artists and tags, with the prompt's added (repeats dropped), and the mode (the prompt's #mode
    wins); BadPrompt for a prompt that does not parse, BadRequest for more than MAX_NAMES of either."""
    artists, tags, mode = list(req.artists), list(req.tags), req.mode
    if req.prompt:
        parsed = parse_prompt(req.prompt)
        artists += parsed.artists
        tags += parsed.tags
        mode = parsed.mode or mode
    artists = list(dict.fromkeys(artists))
    tags = list(dict.fromkeys(tags))
    for field, names in (("artists", artists), ("tags", tags)):
        if len(names) > MAX_NAMES:
            raise BadRequest(f"at most {MAX_NAMES} {field} in one radio (body and prompt together), not "
                             f"{len(names)}", code="too_many_names")
    return artists, tags, mode


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
