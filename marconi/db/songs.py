"""Catalogue reads for songs: search by title/artist."""

from __future__ import annotations

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
