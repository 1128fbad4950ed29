"""The nearest-neighbour reads. Every query orders by ``vec <-> :q`` with a LIMIT so an index drives it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from marconi.db.cube import from_cube, to_cube, to_vector

_SONGS_CUBE = sa.text(
    """
    SELECT nn.track_id, t.key, t.title, t.artist, nn.distance, nn.hub
    FROM (
        SELECT sv.track_id, sv.hub, cube_distance(sv.vec, CAST(:q AS cube)) AS distance
        FROM song_vectors sv
        ORDER BY sv.vec <-> CAST(:q AS cube)
        LIMIT :k
    ) nn
    JOIN tracks t ON t.id = nn.track_id
    ORDER BY nn.distance
    """
)

_SONGS_HNSW = sa.text(
    """
    SELECT nn.track_id, t.key, t.title, t.artist, nn.distance, nn.hub
    FROM (
        SELECT sv.track_id, sv.hub, cube_distance(sv.vec, CAST(:q AS cube)) AS distance
        FROM song_vectors sv
        ORDER BY sv.hvec <#> CAST(:qh AS vector)
        LIMIT :k
    ) nn
    JOIN tracks t ON t.id = nn.track_id
    ORDER BY nn.distance
    """
)


def seed_vectors(conn: sa.Connection, keys: Sequence[str]) -> dict[str, dict]:
    """Return {key: {id, title, artist, qvec (ndarray or None)}} for the given track keys that exist."""
    rows = conn.execute(sa.text(
        "SELECT t.key, t.id, t.title, t.artist, sv.qvec::text FROM tracks t "
        "LEFT JOIN song_vectors sv ON sv.track_id = t.id WHERE t.key = ANY(:keys)"), {"keys": list(keys)}).all()
    return {r[0]: {"id": r[1], "title": r[2], "artist": r[3], "qvec": from_cube(r[4]) if r[4] else None}
            for r in rows}


def nearest_songs(conn: sa.Connection, q: np.ndarray, k: int, method: str = "cube", ef_search: int = 400,
                  hvec_dims: int | None = None) -> list[dict]:
    """Return the ``k`` songs whose item vectors are nearest to ``q`` (cube GiST exact, or pgvector HNSW).

    The HNSW path asks pgvector's inner-product index (``hvec <#> q`` on the item vectors without the extra
    coordinate, ``hvec_dims`` of them) for the top k, and reports the same cube distance as the exact path.
    ``ef_search`` is HNSW's candidate list size: higher is slower and closer to exact (see docs/benchmarks.md).
    """
    q = np.asarray(q, dtype=np.float64)
    if method == "hnsw":
        ef = str(max(ef_search, k) if k <= 1000 else 1000)
        conn.execute(sa.text("SELECT set_config('hnsw.ef_search', :ef, false)"), {"ef": ef})
        qh = q[:hvec_dims] if hvec_dims else q
        rows = conn.execute(_SONGS_HNSW, {"q": to_cube(q), "qh": to_vector(qh), "k": k}).all()
    else:
        rows = conn.execute(_SONGS_CUBE, {"q": to_cube(q), "k": k}).all()
    return [{"track_id": r[0], "key": r[1], "title": r[2], "artist": r[3], "distance": float(r[4]),
             "hub": None if r[5] is None else float(r[5])} for r in rows]


def hnsw_ready(conn: sa.Connection) -> bool:
    """True when song_vectors has a populated, HNSW-indexed pgvector column."""
    return bool(conn.execute(sa.text(
        "SELECT 1 FROM pg_indexes WHERE tablename = 'song_vectors' AND indexname = 'song_vectors_hvec_hnsw'")).first())


_IMAGES_CUBE = sa.text(
    """
    SELECT nn.image_id, nn.distance, nn.full_vec
    FROM (
        SELECT iv.image_id, iv.full_vec, cube_distance(iv.vec, CAST(:q AS cube)) AS distance
        FROM image_vectors iv
        ORDER BY iv.vec <-> CAST(:q AS cube)
        LIMIT :k
    ) nn
    ORDER BY nn.distance
    """
)


def nearest_images(conn: sa.Connection, q: np.ndarray, k: int) -> list[dict]:
    """Return the ``k`` images whose reduced vectors are nearest to ``q``, with their full vectors for re-ranking."""
    rows = conn.execute(_IMAGES_CUBE, {"q": to_cube(q), "k": k}).all()
    return [{"image_id": r[0], "distance": float(r[1]), "full_vec": np.asarray(r[2], dtype=np.float32)} for r in rows]


def image_vectors_of(conn: sa.Connection, image_id: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the serving (reduced, full) vectors of one stored image, or None when it has none."""
    row = conn.execute(sa.text("SELECT vec::text, full_vec FROM image_vectors WHERE image_id = :i"),
                       {"i": image_id}).first()
    if row is None:
        return None
    return from_cube(row[0]), np.asarray(row[1], dtype=np.float32)


def images_by_id(conn: sa.Connection, ids: Sequence[int]) -> dict[int, dict]:
    """Return image metadata rows keyed by id."""
    rows = conn.execute(sa.text(
        "SELECT id, label, description, source, source_url, page_url, wikidata_item, licence, licence_url, author, "
        "attribution, width, height, format FROM images WHERE id = ANY(:ids)"), {"ids": list(ids)}).mappings().all()
    return {r["id"]: dict(r) for r in rows}
