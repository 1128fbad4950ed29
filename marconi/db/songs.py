"""Songs: catalogue search and the radio question."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

_SEARCH = sa.text(
    r"""
    WITH q AS (SELECT marconi_fold(:q) AS f),
    words AS (SELECT array_agg('%' || replace(replace(replace(w, '\', '\\'), '%', '\%'), '_', '\_') || '%') AS pats
              FROM q, regexp_split_to_table(q.f, '\s+') AS w WHERE w <> '')
    SELECT t.key, t.title, t.artist, (sv.track_id IS NOT NULL) AS has_vector,
           count(*) OVER () AS total
    FROM tracks t
    CROSS JOIN q CROSS JOIN words
    LEFT JOIN song_vectors sv ON sv.track_id = t.id
    WHERE t.search LIKE ALL (words.pats)
    ORDER BY (marconi_fold(t.title) = q.f) DESC,
             (t.search LIKE replace(replace(replace(q.f, '\', '\\'), '%', '\%'), '_', '\_') || '%') DESC,
             word_similarity(q.f, t.search) DESC,
             (sv.track_id IS NOT NULL) DESC,
             t.title, t.artist, t.key
    LIMIT :limit OFFSET :offset
    """
)

_COUNT = sa.text(_SEARCH.text.split("SELECT t.key")[0] + """
    SELECT count(*) FROM tracks t CROSS JOIN words WHERE t.search LIKE ALL (words.pats)
    """)


def search_songs(conn: sa.Connection, q: str, limit: int = 20, offset: int = 0) -> tuple[int, list[dict]]:
    """Return (total matches, one page of songs) whose title or artist contains every word of ``q``.

    Matching ignores case and accents; exact titles come first, then prefixes, then trigram word similarity.
    """
    rows = conn.execute(_SEARCH, {"q": q, "limit": limit, "offset": offset}).mappings().all()
    total = rows[0]["total"] if rows else 0
    if not rows and offset:
        total = conn.execute(_COUNT, {"q": q}).scalar()
    return total, [{"key": r["key"], "title": r["title"], "artist": r["artist"], "has_vector": r["has_vector"]}
                   for r in rows]


# radio_answer() (migration 0014): radio() and what the request named, in one statement; a function so that its
# plan is kept per session instead of made on every request
_RADIO = sa.text(
    "SELECT * FROM radio_answer(CAST(:seeds AS text[]), :size, :max_per_artist, :variety, :exact, :ef_search, "
    "CAST(:exclude AS text[]), CAST(:artists AS text[]), CAST(:tags AS text[]), :mode, :closest)"
)


def radio(conn: sa.Connection, seeds: Sequence[str], size: int, max_per_artist: int | None, variety: float,
          exact: bool, ef_search: int, exclude: Sequence[str] = (), artists: Sequence[str] = (),
          tags: Sequence[str] = (), mode: str = "medium", closest: int = 5) -> dict:
    """Ask the SQL function radio() and describe the seeds, artists and tags, in one statement (so from one run).

    Returns {serving, run_id, has_artist_vectors, has_tag_vectors, hnsw, seeds: [{key, title, artist, run_id}],
    artists: [{asked, name, songs, closest}], tags: [{asked, name, songs, closest}], excluded: [{value, kind, title,
    artist}], playlist: [{key, title, artist, distance, score, run_id, reason}]}. A seed unknown to the catalogue has
    a null title, one without a vector a null run_id; an artist or tag the serving model does not know has a null
    name and the ``closest`` names by trigram similarity, and then the playlist is empty. ``exclude`` holds track
    keys or artist names to leave out; ``excluded`` says what each named, in order: kind "song" (its title and
    artist), "artist" (as the catalogue spells it) or "unknown" (matches nothing, left out of nothing).
    """
    row = conn.execute(_RADIO, {"seeds": list(seeds), "size": size, "max_per_artist": max_per_artist,
                                "variety": float(variety), "exact": exact, "ef_search": ef_search,
                                "exclude": list(exclude), "artists": list(artists), "tags": list(tags),
                                "mode": mode, "closest": closest}).mappings().one()
    return {"serving": row["serving"], "run_id": row["run_id"], "hnsw": row["hnsw"],
            "has_artist_vectors": row["has_artist_vectors"], "has_tag_vectors": row["has_tag_vectors"],
            "seeds": row["seeds"] or [], "artists": row["artists"] or [], "tags": row["tags"] or [],
            "excluded": row["excluded"] or [], "playlist": row["playlist"] or []}
