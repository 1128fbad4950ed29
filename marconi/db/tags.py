"""Tags: the ``tags`` and ``track_tags`` tables (filled by the yes importer), their search, and what training reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from marconi.db.copy import copy_rows


def replace_track_tags(conn: sa.Connection, track_tags: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Give each track key exactly the tag names listed for it (tags created as needed); idempotent.

    Tracks not in ``track_tags`` keep theirs. Returns {"tags": names known, "links": track-tag pairs written}.
    """
    if not track_tags:
        return {"tags": 0, "links": 0}
    conn.execute(sa.text("CREATE TEMP TABLE IF NOT EXISTS _in_track_tags (key text, tag text) ON COMMIT DROP"))
    conn.execute(sa.text("TRUNCATE _in_track_tags"))
    copy_rows(conn, "_in_track_tags", ("key", "tag"),
              ((key, tag) for key, tags in track_tags.items() for tag in dict.fromkeys(tags)))
    conn.execute(sa.text("INSERT INTO tags (name) SELECT DISTINCT tag FROM _in_track_tags "
                         "ON CONFLICT (name) DO NOTHING"))
    conn.execute(sa.text(
        """
        DELETE FROM track_tags tt USING tracks t
        WHERE tt.track_id = t.id AND t.key = ANY (:keys)
          AND NOT EXISTS (SELECT 1 FROM _in_track_tags i JOIN tags g ON g.name = i.tag
                          WHERE i.key = t.key AND g.id = tt.tag_id)
        """), {"keys": list(track_tags)})
    links = conn.execute(sa.text(
        """
        INSERT INTO track_tags (track_id, tag_id)
        SELECT t.id, g.id FROM _in_track_tags i JOIN tracks t ON t.key = i.key JOIN tags g ON g.name = i.tag
        ON CONFLICT DO NOTHING
        """)).rowcount
    names = conn.execute(sa.text("SELECT count(DISTINCT tag) FROM _in_track_tags")).scalar()
    return {"tags": int(names), "links": int(links)}


_SEARCH = sa.text(
    r"""
    WITH q AS (SELECT marconi_fold(btrim(:q)) AS f)
    SELECT g.name AS tag, (SELECT count(*) FROM track_tags tt WHERE tt.tag_id = g.id) AS songs
    FROM tags g, q
    WHERE g.folded LIKE '%' || replace(replace(replace(q.f, '\', '\\'), '%', '\%'), '_', '\_') || '%'
    ORDER BY (g.folded = q.f) DESC, (g.folded LIKE replace(replace(replace(q.f, '\', '\\'), '%', '\%'), '_', '\_')
                                      || '%') DESC,
             songs DESC, g.name
    LIMIT :limit
    """
)


def search_tags(conn: sa.Connection, q: str, limit: int = 10) -> list[dict]:
    """Tags whose name contains ``q`` (any case or accents): [{tag, songs}], exact and prefix matches first."""
    return [dict(r) for r in conn.execute(_SEARCH, {"q": q, "limit": limit}).mappings()]


def tags_of_tracks(conn: sa.Connection) -> list[tuple[int, int]]:
    """Every (track id, tag id) pair, for training the tag vectors."""
    return [tuple(r) for r in conn.execute(sa.text("SELECT track_id, tag_id FROM track_tags ORDER BY 1, 2")).all()]
