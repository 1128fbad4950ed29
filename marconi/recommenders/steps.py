"""The pure steps around a radio answer: check the seeds, describe the playlist. No database here."""

from __future__ import annotations

from collections.abc import Sequence

from marconi.errors import Conflict, NotFound, Unavailable


class UnknownSeeds(NotFound):
    """Seed keys that are not in the catalogue, or none of which the serving model knows."""

    code = "unknown_seeds"


class NeedsRetraining(Conflict):
    """The serving song model has no hub scores, so variety cannot be applied."""

    code = "needs_retraining"


class UnknownName(NotFound):
    """An artist or tag name the serving model does not know; ``closest`` lists the nearest names."""


class NoSongModel(Unavailable):
    """No song model is serving yet (or the asked-for index is missing)."""

    code = "no_song_model"


def split_seeds(seeds: Sequence[dict]) -> tuple[list[dict], list[str]]:
    """Return (seeds the model knows, keys of the seeds it ignores); raise UnknownSeeds when it knows none.

    Each seed is ``{key, title, artist, run_id}`` as the database describes it: no title means the key is not in
    the catalogue, no run_id that the song is in the catalogue but not in the model (too rare to train on). Both
    are ignored as long as one seed is known, so a shared link keeps working when one of its songs is gone.
    """
    known = [s for s in seeds if s["run_id"] is not None]
    ignored = [s["key"] for s in seeds if s["run_id"] is None]
    if not known:
        unknown = [s["key"] for s in seeds if s["title"] is None]
        if unknown:
            raise UnknownSeeds(f"unknown seed track keys: {', '.join(unknown)} (find keys with GET /api/songs?q=...)",
                               unknown=unknown)
        raise UnknownSeeds("none of the seeds is in the song model (too rare in the training playlists): "
                           f"{', '.join(ignored)}", unknown=ignored)
    return known, ignored


def spotify_url(key: str) -> str | None:
    """Open-in-Spotify link for keys that are Spotify track URIs."""
    if key.startswith("spotify:track:"):
        return "https://open.spotify.com/track/" + key.rsplit(":", 1)[1]
    return None


def playlist_items(rows: Sequence[dict], variety: float) -> list[dict]:
    """The playlist as the API shows it, each song with its reason ("close to <seed>", "often played with <seed>");
    raise NeedsRetraining when variety met a model without hub scores."""
    if variety > 0 and any(r["score"] is None for r in rows):
        raise NeedsRetraining("the serving song model was trained before variety existed: run `marconi train "
                              "songs` once to use 'variety', or leave it at 0")
    return [{"key": r["key"], "title": r["title"], "artist": r["artist"], "distance": round(r["distance"], 6),
             "score": r["score"], "reason": r.get("reason"), "spotify_url": spotify_url(r["key"])} for r in rows]


def model_run_of(seeds: Sequence[dict], rows: Sequence[dict]) -> int:
    """The one model run an answer comes from; raise AssertionError if its rows name two (they never should)."""
    runs = {r["run_id"] for r in rows} | {s["run_id"] for s in seeds if s["run_id"] is not None}
    if len(runs) != 1:
        raise AssertionError(f"a radio answer mixed model runs {sorted(runs)}")
    return runs.pop()


MODE_VARIETY = {"easy": 0.0, "medium": 0.0, "hard": 0.5}  # added to the request's variety (mirrors radio() in SQL)


def mode_variety(mode: str, variety: float) -> float:
    """The variety radio() applies in ``mode``: the request's, plus 0.5 in hard mode (at most 1)."""
    return min(1.0, variety + MODE_VARIETY[mode])


def check_names(kind: str, asked: Sequence[dict]) -> list[dict]:
    """Return the asked artists or tags (``kind``) as the model knows them, repeats of one name dropped; raise
    UnknownName (404, code ``unknown_<kind>``) for the first one it does not know, naming the closest."""
    for a in asked:
        if a["name"] is None:
            closest = list(a["closest"] or [])
            hint = f"; closest: {', '.join(closest)}" if closest else ""
            raise UnknownName(f"no {kind} called {a['asked']!r}{hint}", code=f"unknown_{kind}", closest=closest)
    return list({a["name"]: a for a in asked}.values())
