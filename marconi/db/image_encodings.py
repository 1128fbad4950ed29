"""Encoded image features kept between runs (``image_encodings``), the checkpoint of a resumable encode.

Rows are keyed by an ``encoding`` (which encoder, weights, device type and dtype made them), so features of
different encoders never mix. Vectors are stored as little-endian float32 bytes (one ``numpy.frombuffer`` to read
back). Functions take a connection first and never commit: the writer commits each batch, so what a reader sees
is whole batches only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa

from marconi.db.copy import copy_rows

COLUMNS = ("encoding", "image_id", "features", "classes")


def _bytea(vector: np.ndarray | None) -> str | None:
    """Return ``vector`` as float32 little-endian bytes in bytea's hex input form (copy_rows escapes the slash)."""
    if vector is None:
        return None
    return "\\x" + np.ascontiguousarray(vector, dtype="<f4").tobytes().hex()


def missing_ids(conn: sa.Connection, encoding: str) -> list[int]:
    """Return the ids of the stored images with no features of ``encoding`` yet, in id order."""
    return list(conn.execute(sa.text(
        "SELECT i.id FROM images i WHERE NOT EXISTS "
        "(SELECT 1 FROM image_encodings e WHERE e.encoding = :e AND e.image_id = i.id) ORDER BY i.id"),
        {"e": encoding}).scalars())


def save(conn: sa.Connection, encoding: str, ids: Sequence[int], features: np.ndarray,
         classes: np.ndarray | None) -> int:
    """COPY one batch of features (and class probabilities, or None) on the caller's transaction; return the count.

    An image already saved under ``encoding`` violates the primary key: the batch is refused whole, never doubled.
    """
    rows = ((encoding, int(i), _bytea(features[r]), None if classes is None else _bytea(classes[r]))
            for r, i in enumerate(ids))
    return copy_rows(conn, "image_encodings", COLUMNS, rows)


def load(conn: sa.Connection, encoding: str) -> tuple[list[int], np.ndarray, np.ndarray | None]:
    """Return (image ids, features (N, D) float32, class probabilities (N, C) or None) saved under ``encoding``
    for the images still stored, in id order; an empty (0, 0) array when there are none."""
    rows = conn.execute(sa.text(
        "SELECT image_id, features, classes FROM image_encodings WHERE encoding = :e ORDER BY image_id"),
        {"e": encoding}).all()
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32), None
    features = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float32)
    has_classes = rows[0][2] is not None
    classes = np.stack([np.frombuffer(r[2], dtype="<f4") for r in rows]).astype(np.float32) if has_classes else None
    return [r[0] for r in rows], features, classes


def count(conn: sa.Connection, encoding: str | None = None) -> int:
    """Return how many images have saved features (of ``encoding``, or of any encoding)."""
    if encoding is None:
        return conn.execute(sa.text("SELECT count(*) FROM image_encodings")).scalar_one()
    return conn.execute(sa.text("SELECT count(*) FROM image_encodings WHERE encoding = :e"),
                        {"e": encoding}).scalar_one()


def delete(conn: sa.Connection, encoding: str | None = None) -> int:
    """Delete the saved features of ``encoding`` (of every encoding when None), so the next run encodes afresh;
    return how many rows went."""
    if encoding is None:
        return conn.execute(sa.text("DELETE FROM image_encodings")).rowcount
    return conn.execute(sa.text("DELETE FROM image_encodings WHERE encoding = :e"), {"e": encoding}).rowcount
