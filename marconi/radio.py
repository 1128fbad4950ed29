"""Radio: seeds → query vector → candidates → filters → ordered playlist.

Every step but ``candidates`` is a small pure function that can be tested without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from marconi.db import neighbours

MAX_SIZE = 200
MAX_SEEDS = 50


class RadioError(Exception):
    """A radio request that cannot be answered; ``status`` is the HTTP status to use."""

    status = 400

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.details = details


class UnknownSeeds(RadioError):
    """Seed keys that are not in the catalogue."""

    status = 404


class NeedsRetraining(RadioError):
    """The serving song model has no hub scores, so variety cannot be applied."""

    status = 409


class NoModel(RadioError):
    """No song model is serving yet."""

    status = 503


@dataclass(frozen=True)
class RadioRequest:
    """A validated radio request."""

    seeds: tuple[str, ...]
    size: int = 25
    max_per_artist: int | None = None
    variety: float = 0.0


def parse_request(body) -> RadioRequest:
    """Validate a JSON body ``{"seeds": [...], "size": 25, "max_per_artist": null}``; raise RadioError if bad."""
    if not isinstance(body, dict):
        raise RadioError("request body must be a JSON object like {\"seeds\": [\"yes_small:0\"], \"size\": 25}")
    seeds = body.get("seeds")
    if not isinstance(seeds, list) or not seeds:
        raise RadioError("'seeds' must be a non-empty list of track keys (find keys with GET /api/songs?q=...)")
    if len(seeds) > MAX_SEEDS:
        raise RadioError(f"at most {MAX_SEEDS} seeds, got {len(seeds)}")
    if not all(isinstance(s, str) and s.strip() and "\x00" not in s and len(s) <= 300 for s in seeds):
        raise RadioError("every seed must be a non-empty string track key (at most 300 characters, no NUL)")
    size = body.get("size", 25)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise RadioError(f"'size' must be an integer from 1 to {MAX_SIZE}")
    cap = body.get("max_per_artist")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise RadioError("'max_per_artist' must be a positive integer or null")
    variety = body.get("variety", 0)
    if isinstance(variety, bool) or not isinstance(variety, int | float) or not 0 <= variety <= 1:
        raise RadioError("'variety' must be a number from 0 (the closest songs) to 1 (fewest of the songs that "
                         "turn up in every radio); 0.25 to 0.5 is a good range")
    unknown = set(body) - {"seeds", "size", "max_per_artist", "variety"}
    if unknown:
        raise RadioError(f"unknown fields: {', '.join(sorted(unknown))}")
    return RadioRequest(tuple(dict.fromkeys(s.strip() for s in seeds)), size, cap, float(variety))


def query_vector(qvecs: Sequence[np.ndarray]) -> np.ndarray:
    """Sum the seeds' unit input vectors into one query vector."""
    if not qvecs:
        raise ValueError("no seed vectors")
    return np.sum(np.vstack(qvecs), axis=0)


def pad(q: np.ndarray, dims: int) -> np.ndarray:
    """Pad ``q`` with zeros to ``dims`` coordinates (the item side's extra inner-product coordinate)."""
    return np.concatenate([q, np.zeros(max(dims - q.size, 0))])


VARIETY_CANDIDATES = 200


def candidate_count(req: RadioRequest) -> int:
    """How many neighbours to fetch so that filtering seeds and capping artists still leaves ``size`` songs.

    With variety the candidates are re-ranked, so more are fetched: on yes_small the top 200 by score give the same
    playlists as re-ranking every song for variety up to 0.5 (docs/evaluation.md).
    """
    factor = 1 if req.max_per_artist is None else 4
    n = (req.size + len(req.seeds)) * factor + 10
    return max(n, VARIETY_CANDIDATES) if req.variety > 0 else n


def apply_variety(cands: list[dict], variety: float) -> list[dict]:
    """Re-rank scored candidates by ``score - variety * hub`` (CSLS); variety 0 keeps the order.

    Each candidate needs ``score`` (see add_scores) and ``hub`` (its hubness from training); the ``score`` reported
    afterwards is the adjusted one, so it falls down the playlist.
    """
    if variety <= 0:
        return cands
    if any(c.get("hub") is None for c in cands):
        raise NeedsRetraining("the serving song model was trained before variety existed: run `marconi train songs` "
                              "once to use 'variety', or leave it at 0")
    for c in cands:
        c["score"] = round(c["score"] - variety * c["hub"], 6)
    return sorted(cands, key=lambda c: -c["score"])


def drop_seeds(cands: list[dict], seed_keys: Sequence[str]) -> list[dict]:
    """Remove the seeds themselves from the candidates."""
    seeds = set(seed_keys)
    return [c for c in cands if c["key"] not in seeds]


def cap_artists(cands: list[dict], max_per_artist: int | None, seed_artists: Sequence[str] = ()) -> list[dict]:
    """Keep at most ``max_per_artist`` songs per artist (case-insensitive), in order."""
    if max_per_artist is None:
        return cands
    seen: dict[str, int] = {}
    out = []
    for c in cands:
        a = (c.get("artist") or "").strip().lower()
        if a and seen.get(a, 0) >= max_per_artist:
            continue
        seen[a] = seen.get(a, 0) + 1
        out.append(c)
    return out


def add_scores(cands: list[dict], q: np.ndarray, item_norm: float) -> list[dict]:
    """Attach ``score``: the candidate's inner product with the unit query direction, from its distance."""
    qn = float(np.linalg.norm(q)) or 1.0
    for c in cands:
        c["score"] = round((qn * qn + item_norm * item_norm - c["distance"] ** 2) / (2 * qn), 6)
    return cands


def spotify_url(key: str) -> str | None:
    """Open-in-Spotify link for keys that are Spotify track URIs."""
    if key.startswith("spotify:track:"):
        return "https://open.spotify.com/track/" + key.rsplit(":", 1)[1]
    return None


def method_for(conn: sa.Connection, ann: str) -> str:
    """Pick 'hnsw' or 'cube' for the kNN read according to the ``ann`` setting and what the database has."""
    if ann == "cube":
        return "cube"
    ready = neighbours.hnsw_ready(conn)
    if ann == "hnsw" and not ready:
        raise NoModel("MARCONI_ANN=hnsw but song_vectors has no HNSW index (is pgvector installed?)")
    return "hnsw" if ready else "cube"


def make_radio(conn: sa.Connection, req: RadioRequest, ann: str = "auto", ef_search: int = 400) -> dict:
    """Answer a radio request from the serving song model: the playlist plus which seeds were used."""
    from marconi.db.vectors import serving_run

    run = serving_run(conn, "songs")
    if run is None:
        raise NoModel("no song model is serving yet: run `marconi train songs`")
    found = neighbours.seed_vectors(conn, req.seeds)
    unknown = [s for s in req.seeds if s not in found]
    if unknown:
        raise UnknownSeeds(f"unknown seed track keys: {', '.join(unknown)}", unknown=unknown)
    with_vec = [s for s in req.seeds if found[s]["qvec"] is not None]
    without = [s for s in req.seeds if found[s]["qvec"] is None]
    if not with_vec:
        raise UnknownSeeds("none of the seeds is in the song model (too rare in the training playlists): "
                           f"{', '.join(without)}", unknown=without)
    q = pad(query_vector([found[s]["qvec"] for s in with_vec]), run["dims"])
    cands = neighbours.nearest_songs(conn, q, candidate_count(req), method_for(conn, ann), ef_search,
                                     run["params"].get("vector_size"))
    cands = add_scores(drop_seeds(cands, req.seeds), q, float(run["metrics"].get("item_norm", 1.0)))
    cands = cap_artists(apply_variety(cands, req.variety), req.max_per_artist)[: req.size]
    playlist = [{"key": c["key"], "title": c["title"], "artist": c["artist"], "distance": round(c["distance"], 6),
                 "score": c["score"], "spotify_url": spotify_url(c["key"])} for c in cands]
    return {"seeds": [{"key": s, "title": found[s]["title"], "artist": found[s]["artist"]} for s in with_vec],
            "ignored_seeds": without, "model_run": run["id"], "variety": req.variety, "size": len(playlist),
            "playlist": playlist}
