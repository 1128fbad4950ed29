"""What the database holds: row counts of the ingest tables and the database's size."""

from __future__ import annotations

import sqlalchemy as sa


def counts(conn: sa.Connection) -> dict[str, int]:
    """Return row counts of the ingest tables."""
    row = conn.execute(sa.text(
        "SELECT (SELECT count(*) FROM tracks), (SELECT count(*) FROM playlists), "
        "(SELECT count(*) FROM playlist_tracks), (SELECT count(*) FROM images)")).one()
    return {"tracks": row[0], "playlists": row[1], "playlist_tracks": row[2], "images": row[3]}


def database_bytes(conn: sa.Connection) -> int:
    """Return the size of the current database in bytes."""
    return conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()


def songs_missing_hub_scores(conn: sa.Connection) -> bool:
    """True when some song vectors lack the hub scores radio variety needs (trained before migration 0005)."""
    return conn.execute(sa.text("SELECT 1 FROM song_vectors WHERE hub IS NULL LIMIT 1")).first() is not None


def knn_paths(conn: sa.Connection) -> dict:
    """Which index answers each kNN question: pgvector's HNSW for songs when the serving run has one (pgvector
    installed), else the exact cube GiST index; images always use cube GiST. With pgvector's version, or None."""
    pgvector, song_hnsw = conn.execute(sa.text(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
        "to_regclass('song_vectors_hvec_hnsw') IS NOT NULL")).one()
    exact = "cube GiST (exact)"
    return {"pgvector": pgvector, "songs": "pgvector HNSW" if song_hnsw else exact, "images": exact}
