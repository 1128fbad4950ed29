"""Playlists: idempotent upserts of playlists and their ordered tracks, and reading them back in order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from marconi.db.copy import copy_rows
from marconi.db.tracks import track_ids


@dataclass
class Playlist:
    """An ordered playlist; ``track_keys`` must all be known tracks (or in the same upsert batch)."""

    key: str
    source: str
    name: str | None = None
    owner: str | None = None
    snapshot_id: str | None = None
    track_keys: list[str] = field(default_factory=list)


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


def playlist_sequences(conn: sa.Connection) -> Iterator[tuple[list[int], list[str]]]:
    """Yield (track ids, lower-cased artists) of every playlist, in order (streamed)."""
    result = conn.execution_options(stream_results=True, max_row_buffer=5000).execute(sa.text(
        """
        SELECT array_agg(pt.track_id ORDER BY pt.position), array_agg(lower(t.artist) ORDER BY pt.position)
        FROM playlist_tracks pt JOIN tracks t ON t.id = pt.track_id
        GROUP BY pt.playlist_id ORDER BY pt.playlist_id
        """
    ))
    for ids, artists in result:
        yield list(ids), list(artists)


def playlist_keys(conn: sa.Connection) -> list[list[str]]:
    """Every playlist as its list of track keys, in order."""
    rows = conn.execute(sa.text(
        "SELECT array_agg(t.key ORDER BY pt.position) FROM playlist_tracks pt "
        "JOIN tracks t ON t.id = pt.track_id GROUP BY pt.playlist_id ORDER BY pt.playlist_id")).scalars()
    return [list(keys) for keys in rows]
