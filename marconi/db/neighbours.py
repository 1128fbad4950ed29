"""Image nearest-neighbour reads (moving to marconi/db/images.py). Queries order by ``vec <-> :q`` LIMIT k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from marconi.db.cube import from_cube, to_cube

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
