"""Images: their rows and bytes, metadata by id, and the nearest-neighbour reads on ``image_vectors``.

Every kNN statement orders by ``vec <-> q`` with a LIMIT so the GiST index drives it, and returns each row's
``run_id``: the caller checks that the vectors come from the run whose PCA and calibration it used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from marconi.db.cube import to_cube


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
_META_COLUMNS = ", ".join(f"i.{c}" for c in _IMAGE_META)
# the five tags an image shows first (same statement as its vectors, so from the same run)
TAGS_COLUMN = "ARRAY(SELECT t.tag FROM image_tags t WHERE t.image_id = i.id ORDER BY t.rank LIMIT 5) AS tags"


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


def image_id_by_sha256(conn: sa.Connection, sha256: str) -> int | None:
    """Return the id of the stored image with these exact bytes, or None."""
    return conn.execute(sa.text("SELECT id FROM images WHERE sha256 = :s"), {"s": sha256}).scalar()


def images_by_id(conn: sa.Connection, ids: Sequence[int]) -> dict[int, dict]:
    """Return image metadata rows (id and the metadata columns) keyed by id; unknown ids are left out."""
    rows = conn.execute(sa.text(f"SELECT i.id, {_META_COLUMNS}, {TAGS_COLUMN} FROM images i WHERE i.id = ANY(:ids)"),
                        {"ids": list(ids)}).mappings().all()
    return {r["id"]: dict(r) for r in rows}


def image_file(conn: sa.Connection, image_id: int, thumbnail: bool = False) -> tuple[bytes, str, str] | None:
    """Return (bytes, sha256, format) of a stored image, or of its JPEG thumbnail; None when there is none."""
    column = "b.thumbnail" if thumbnail else "b.data"
    row = conn.execute(sa.text(
        f"SELECT {column}, i.sha256, i.format FROM images i JOIN image_blobs b ON b.image_id = i.id WHERE i.id = :i"),
        {"i": image_id}).first()
    return None if row is None else (bytes(row[0]), row[1], row[2])


def count_images(conn: sa.Connection) -> int:
    """Return how many images are stored."""
    return conn.execute(sa.text("SELECT count(*) FROM images")).scalar_one()


def labels_by_id(conn: sa.Connection) -> dict[int, str | None]:
    """Return {image id: label} for every stored image."""
    return dict(conn.execute(sa.text("SELECT id, label FROM images")).all())


def stream_image_bytes(conn: sa.Connection) -> Iterator[tuple[int, bytes]]:
    """Yield (image id, original bytes) for every stored image in id order, streamed from a server-side cursor."""
    rows = conn.execution_options(stream_results=True, max_row_buffer=256).execute(sa.text(
        "SELECT i.id, b.data FROM images i JOIN image_blobs b ON b.image_id = i.id ORDER BY i.id"))
    for image_id, data in rows:
        yield image_id, bytes(data)


def image_bytes(conn: sa.Connection, ids: Sequence[int]) -> list[tuple[int, bytes]]:
    """Return (image id, original bytes) of the stored images among ``ids``, in id order (one batch of work)."""
    rows = conn.execute(sa.text("SELECT image_id, data FROM image_blobs WHERE image_id = ANY(:ids) ORDER BY image_id"),
                        {"ids": [int(i) for i in ids]})
    return [(image_id, bytes(data)) for image_id, data in rows]


NEAREST_SQL = sa.text(
    f"""
    SELECT nn.image_id, nn.run_id, nn.distance, nn.full_vec, {_META_COLUMNS}, {TAGS_COLUMN}
    FROM (
        SELECT iv.image_id, iv.run_id, array_send(iv.full_vec) AS full_vec,
               cube_distance(iv.vec, CAST(:q AS cube)) AS distance
        FROM image_vectors iv
        ORDER BY iv.vec <-> CAST(:q AS cube)
        LIMIT :k
    ) nn
    JOIN images i ON i.id = nn.image_id
    ORDER BY nn.distance
    """
)

# The stored image's own vectors and its neighbours in one statement (one snapshot of image_vectors, so one run).
# The first row is the query image itself (is_query), present whenever the image exists; its vectors are NULL
# when it has none in the serving run, and then no neighbour rows follow.
SIMILAR_SQL = sa.text(
    f"""
    WITH q AS MATERIALIZED (
        SELECT i.id, iv.run_id, iv.vec, iv.full_vec
        FROM images i LEFT JOIN image_vectors iv ON iv.image_id = i.id
        WHERE i.id = :i
    ),
    nn AS MATERIALIZED (
        SELECT iv.image_id, iv.run_id, array_send(iv.full_vec) AS full_vec,
               cube_distance(iv.vec, (SELECT vec FROM q)) AS distance
        FROM image_vectors iv
        WHERE (SELECT vec FROM q) IS NOT NULL
        ORDER BY iv.vec <-> (SELECT vec FROM q)
        LIMIT :k
    )
    SELECT true AS is_query, q.id AS image_id, q.run_id, 0.0::float8 AS distance, array_send(q.full_vec) AS full_vec,
           {_META_COLUMNS},
           {TAGS_COLUMN}
    FROM q JOIN images i ON i.id = q.id
    UNION ALL
    SELECT false, nn.image_id, nn.run_id, nn.distance, nn.full_vec, {_META_COLUMNS}, {TAGS_COLUMN}
    FROM nn JOIN images i ON i.id = nn.image_id
    ORDER BY is_query DESC, distance
    """
)


# array_send's binary form of a one-dimensional real[]: ndim, has-nulls flag, element type, length, lower bound
# (int4 each), then a (byte length, value) pair of big-endian int4 / float4 per element
_ARRAY_HEADER = np.dtype([("ndim", ">i4"), ("nulls", ">i4"), ("type", ">u4"), ("length", ">i4"), ("lbound", ">i4")])
_FLOAT4_ELEMENT = np.dtype([("size", ">i4"), ("value", ">f4")])
FLOAT4_OID = 700


def full_vector(sent: bytes | memoryview | None) -> np.ndarray | None:
    """A ``real[]`` column read as ``array_send(column)``, as float32 (None for NULL).

    The binary form is read about 3x faster than the text form psycopg2 gets for a plain ``real[]`` (2.4 against
    8.4 ms for 50 vectors of 1,280 floats), which a photo search reads for its candidates.
    """
    if sent is None:
        return None
    header = np.frombuffer(sent, dtype=_ARRAY_HEADER, count=1)[0]
    if header["ndim"] != 1 or header["nulls"] or header["type"] != FLOAT4_OID:
        raise ValueError("expected a one-dimensional real[] without NULLs from array_send")
    return np.frombuffer(sent, dtype=_FLOAT4_ELEMENT, offset=_ARRAY_HEADER.itemsize)["value"].astype(np.float32)


def _neighbour(row: sa.RowMapping) -> dict:
    out = {k: row[k] for k in ("image_id", "run_id", "tags", *_IMAGE_META)}
    out["distance"] = float(row["distance"])
    out["full_vec"] = full_vector(row["full_vec"])
    return out


def nearest_images(conn: sa.Connection, q: np.ndarray, k: int) -> list[dict]:
    """Return the ``k`` images whose reduced vectors are nearest to ``q``, nearest first.

    Each row: image_id, run_id, distance (cube), full_vec (for re-ranking and confidence) and the metadata columns.
    """
    return [_neighbour(r) for r in conn.execute(NEAREST_SQL, {"q": to_cube(q), "k": k}).mappings()]


def similar_to_stored(conn: sa.Connection, image_id: int, k: int) -> tuple[dict | None, list[dict]]:
    """Return (the stored image, its ``k`` nearest images including itself), read in one statement.

    The first item is None when no image has this id; its ``full_vec`` and ``run_id`` are None when it has no vector
    in the serving run (then the list is empty). Rows are shaped as in :func:`nearest_images`.
    """
    rows = conn.execute(SIMILAR_SQL, {"i": image_id, "k": k}).mappings().all()
    if not rows or not rows[0]["is_query"]:
        return None, []
    return _neighbour(rows[0]), [_neighbour(r) for r in rows[1:]]


def serving_vectors(conn: sa.Connection) -> tuple[int | None, list[int], np.ndarray, list[str | None]]:
    """Return (run id, image ids, full vectors (N, D) float32, labels) of the serving image run, in id order, read
    in one statement (one run); (None, [], empty, []) when no image run serves."""
    rows = conn.execute(sa.text(
        "SELECT iv.run_id, iv.image_id, array_send(iv.full_vec), i.label FROM image_vectors iv "
        "JOIN images i ON i.id = iv.image_id "
        "ORDER BY iv.image_id")).all()
    if not rows:
        return None, [], np.zeros((0, 0), dtype=np.float32), []
    return (rows[0][0], [r[1] for r in rows], np.stack([full_vector(r[2]) for r in rows]),
            [r[3] for r in rows])


def indexed_labels(conn: sa.Connection) -> list[str]:
    """Return the distinct labels of the images in the serving image run."""
    return list(conn.execute(sa.text(
        "SELECT DISTINCT i.label FROM image_vectors iv JOIN images i ON i.id = iv.image_id WHERE i.label IS NOT NULL"
    )).scalars())
