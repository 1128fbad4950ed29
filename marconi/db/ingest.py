"""Idempotent upserts for tracks, playlists and images (the ingest tables)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from marconi.db.copy import copy_rows


@dataclass
class Track:
    """A song as a source knows it; ``key`` is unique across sources ('yes:12', 'spotify:track:<id>')."""

    key: str
    title: str
    artist: str = ""
    duration_ms: int | None = None


@dataclass
class Playlist:
    """An ordered playlist; ``track_keys`` must all be known tracks (or in the same upsert batch)."""

    key: str
    source: str
    name: str | None = None
    owner: str | None = None
    snapshot_id: str | None = None
    track_keys: list[str] = field(default_factory=list)


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


def upsert_playlists(conn: sa.Connection, playlists: Sequence[Playlist]) -> dict[str, int]:
    """Insert or update playlists and replace their track lists; return counts {inserted, updated, unchanged}.

    A playlist and its tracks are written in the caller's transaction, so a reader never sees half of one.
    Unknown track keys raise KeyError naming them.
    """
    counts = {"inserted": 0, "updated": 0, "unchanged": 0}
    if not playlists:
        return counts
    unique = {p.key: p for p in playlists}
    all_keys = {k for p in unique.values() for k in p.track_keys}
    ids = track_ids(conn, sorted(all_keys))
    missing = all_keys - ids.keys()
    if missing:
        raise KeyError(f"unknown track keys: {sorted(missing)[:10]}")

    existing = conn.execute(sa.text(
        """
        SELECT p.key, p.id, p.name, p.owner, p.snapshot_id,
               coalesce(array_agg(pt.track_id ORDER BY pt.position) FILTER (WHERE pt.track_id IS NOT NULL), '{}')
        FROM playlists p LEFT JOIN playlist_tracks pt ON pt.playlist_id = p.id
        WHERE p.key = ANY(:keys) GROUP BY p.id
        """
    ), {"keys": list(unique)}).all()
    current = {r[0]: r for r in existing}

    changed: list[Playlist] = []
    for p in unique.values():
        tids = [ids[k] for k in p.track_keys]
        row = current.get(p.key)
        if row is None:
            counts["inserted"] += 1
            changed.append(p)
        elif (row[2], row[3], row[4], list(row[5])) != (p.name, p.owner, p.snapshot_id, tids):
            counts["updated"] += 1
            changed.append(p)
        else:
            counts["unchanged"] += 1
    if not changed:
        return counts

    conn.execute(sa.text(
        "CREATE TEMP TABLE IF NOT EXISTS _in_playlists (key text, source text, name text, owner text, "
        "snapshot_id text, n_tracks int) ON COMMIT DROP"))
    conn.execute(sa.text(
        "CREATE TEMP TABLE IF NOT EXISTS _in_playlist_tracks (key text, position int, track_id bigint) ON COMMIT DROP"))
    conn.execute(sa.text("TRUNCATE _in_playlists, _in_playlist_tracks"))
    copy_rows(conn, "_in_playlists", ("key", "source", "name", "owner", "snapshot_id", "n_tracks"),
              ((p.key, p.source, p.name, p.owner, p.snapshot_id, len(p.track_keys)) for p in changed))
    copy_rows(conn, "_in_playlist_tracks", ("key", "position", "track_id"),
              ((p.key, pos, ids[k]) for p in changed for pos, k in enumerate(p.track_keys)))
    conn.execute(sa.text(
        """
        INSERT INTO playlists (key, source, name, owner, snapshot_id, n_tracks)
        SELECT key, source, name, owner, snapshot_id, n_tracks FROM _in_playlists
        ON CONFLICT (key) DO UPDATE
           SET name = EXCLUDED.name, owner = EXCLUDED.owner, snapshot_id = EXCLUDED.snapshot_id,
               n_tracks = EXCLUDED.n_tracks, updated_at = now()
        """
    ))
    conn.execute(sa.text(
        "DELETE FROM playlist_tracks pt USING playlists p, _in_playlists i "
        "WHERE pt.playlist_id = p.id AND p.key = i.key"))
    conn.execute(sa.text(
        """
        INSERT INTO playlist_tracks (playlist_id, position, track_id)
        SELECT p.id, i.position, i.track_id FROM _in_playlist_tracks i JOIN playlists p USING (key)
        """
    ))
    conn.execute(sa.text("TRUNCATE _in_playlists, _in_playlist_tracks"))
    return counts


def counts(conn: sa.Connection) -> dict[str, int]:
    """Return row counts of the ingest tables."""
    row = conn.execute(sa.text(
        "SELECT (SELECT count(*) FROM tracks), (SELECT count(*) FROM playlists), "
        "(SELECT count(*) FROM playlist_tracks), (SELECT count(*) FROM images)")).one()
    return {"tracks": row[0], "playlists": row[1], "playlist_tracks": row[2], "images": row[3]}


@dataclass
class ImageRecord:
    """An image to store: its bytes plus whatever metadata the source knows."""

    sha256: str
    data: bytes
    thumbnail: bytes
    width: int
    height: int
    format: str
    source: str
    label: str | None = None
    description: str | None = None
    source_url: str | None = None
    page_url: str | None = None
    wikidata_item: str | None = None
    licence: str | None = None
    licence_url: str | None = None
    author: str | None = None
    attribution: str | None = None


_IMAGE_META = ("label", "description", "source", "source_url", "page_url", "wikidata_item", "licence",
               "licence_url", "author", "attribution", "width", "height", "format")


def upsert_image(conn: sa.Connection, rec: ImageRecord) -> tuple[int, bool]:
    """Store one image (row and bytes together) unless its sha256 is known; return (id, inserted)."""
    row = conn.execute(sa.text("SELECT id FROM images WHERE sha256 = :s"), {"s": rec.sha256}).first()
    if row is not None:
        return row[0], False
    params = {k: getattr(rec, k) for k in _IMAGE_META}
    params["sha256"] = rec.sha256
    cols = ", ".join(("sha256",) + _IMAGE_META)
    vals = ", ".join(f":{c}" for c in ("sha256",) + _IMAGE_META)
    new_id = conn.execute(sa.text(
        f"INSERT INTO images ({cols}) VALUES ({vals}) ON CONFLICT (sha256) DO NOTHING RETURNING id"), params).scalar()
    if new_id is None:  # a concurrent writer stored it first
        return conn.execute(sa.text("SELECT id FROM images WHERE sha256 = :s"), {"s": rec.sha256}).scalar(), False
    conn.execute(sa.text("INSERT INTO image_blobs (image_id, data, thumbnail) VALUES (:i, :d, :t)"),
                 {"i": new_id, "d": rec.data, "t": rec.thumbnail})
    return new_id, True
