"""Tracks: idempotent upserts and key → id lookups on the ``tracks`` table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from marconi.db.copy import copy_rows


@dataclass
class Track:
    """A song as a source knows it; ``key`` is unique across sources ('yes:12', 'spotify:track:<id>')."""

    key: str
    title: str
    artist: str = ""
    duration_ms: int | None = None


def upsert_tracks(conn: sa.Connection, tracks: Sequence[Track]) -> dict[str, int]:
    """Insert new tracks and update changed ones; return {key: id} for every key given."""
    if not tracks:
        return {}
    conn.execute(sa.text("CREATE TEMP TABLE IF NOT EXISTS _in_tracks "
                         "(key text, title text, artist text, duration_ms int) ON COMMIT DROP"))
    conn.execute(sa.text("TRUNCATE _in_tracks"))
    unique = {t.key: t for t in tracks}
    copy_rows(conn, "_in_tracks", ("key", "title", "artist", "duration_ms"),
              ((t.key, t.title, t.artist or "", t.duration_ms) for t in unique.values()))
    conn.execute(sa.text(
        """
        INSERT INTO tracks (key, title, artist, duration_ms)
        SELECT key, title, artist, duration_ms FROM _in_tracks
        ON CONFLICT (key) DO UPDATE
           SET title = EXCLUDED.title, artist = EXCLUDED.artist,
               duration_ms = COALESCE(EXCLUDED.duration_ms, tracks.duration_ms)
         WHERE (tracks.title, tracks.artist) IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.artist)
            OR (EXCLUDED.duration_ms IS NOT NULL AND tracks.duration_ms IS DISTINCT FROM EXCLUDED.duration_ms)
        """
    ))
    rows = conn.execute(sa.text("SELECT t.key, t.id FROM tracks t JOIN _in_tracks i USING (key)")).all()
    conn.execute(sa.text("TRUNCATE _in_tracks"))
    return {k: i for k, i in rows}


def track_ids(conn: sa.Connection, keys: Sequence[str]) -> dict[str, int]:
    """Return {key: id} for the keys that exist."""
    if not keys:
        return {}
    rows = conn.execute(sa.text("SELECT key, id FROM tracks WHERE key = ANY(:keys)"), {"keys": list(keys)}).all()
    return {k: i for k, i in rows}


def count_with_prefix(conn: sa.Connection, prefix: str) -> int:
    """How many tracks have keys starting with ``prefix:``."""
    return conn.execute(sa.text("SELECT count(*) FROM tracks WHERE key LIKE :p"),
                        {"p": prefix.replace("%", r"\%").replace("_", r"\_") + ":%"}).scalar()
