"""Artists: names from the ``tracks`` catalogue, matched by folded name (lower case, no accents)."""

from __future__ import annotations

import sqlalchemy as sa

# an artist's name as shown: its most common spelling among its songs
_SEARCH = sa.text(
    r"""
    WITH q AS (SELECT marconi_fold(btrim(:q)) AS f),
    found AS (
        SELECT marconi_fold(btrim(t.artist)) AS folded, mode() WITHIN GROUP (ORDER BY btrim(t.artist)) AS name,
               count(*) AS songs
        FROM tracks t, q
        WHERE marconi_fold(btrim(t.artist)) LIKE '%' || replace(replace(replace(q.f, '\', '\\'), '%', '\%'), '_',
                                                                '\_') || '%'
          AND btrim(t.artist) <> ''
        GROUP BY 1
    )
    SELECT f.name, f.songs FROM found f, q
    ORDER BY (f.folded = q.f) DESC,
             (f.folded LIKE replace(replace(replace(q.f, '\', '\\'), '%', '\%'), '_', '\_') || '%') DESC,
             f.songs DESC, f.name
    LIMIT :limit
    """
)


def search_artists(conn: sa.Connection, q: str, limit: int = 10) -> list[dict]:
    """Artists whose name contains ``q`` (any case or accents): [{name, songs}], exact and prefix matches first,
    then those with more songs in the catalogue."""
    return [dict(r) for r in conn.execute(_SEARCH, {"q": q, "limit": limit}).mappings()]


def artists_of_tracks(conn: sa.Connection) -> dict[int, tuple[str, str]]:
    """{track id: (folded artist name, name as written)} for every track with an artist, for training."""
    rows = conn.execute(sa.text("SELECT id, marconi_fold(btrim(artist)), btrim(artist) FROM tracks "
                                "WHERE btrim(artist) <> ''")).all()
    return {int(i): (folded, name) for i, folded, name in rows}
