"""What images show, in words: the classifier's classes, each image's top classes, and its readable tags."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

CLASS_COLUMNS = ("class_index", "wnid", "name", "names", "definition", "broader")
IMAGE_CLASS_COLUMNS = ("image_id", "run_id", "class_index", "p", "score")
IMAGE_TAG_COLUMNS = ("image_id", "run_id", "tag", "score", "direct", "rank")


def upsert_classes(conn: sa.Connection, classes: Sequence[dict]) -> None:
    """Store the classifier's vocabulary (one dict per class with CLASS_COLUMNS), replacing what changed."""
    params = {c: [k[c] for k in classes] for c in ("class_index", "wnid", "name", "definition")}
    params["names"] = ["\x1f".join(k["names"]) for k in classes]
    params["broader"] = ["\x1f".join(k["broader"]) for k in classes]
    conn.execute(sa.text(
        """
        INSERT INTO classes (class_index, wnid, name, names, definition, broader)
        SELECT u.class_index, u.wnid, u.name, string_to_array(u.names, chr(31)), u.definition,
               coalesce(string_to_array(nullif(u.broader, ''), chr(31)), '{}')
        FROM unnest(CAST(:class_index AS int[]), CAST(:wnid AS text[]), CAST(:name AS text[]),
                    CAST(:names AS text[]), CAST(:definition AS text[]), CAST(:broader AS text[]))
             AS u(class_index, wnid, name, names, definition, broader)
        ON CONFLICT (class_index) DO UPDATE
           SET wnid = EXCLUDED.wnid, name = EXCLUDED.name, names = EXCLUDED.names,
               definition = EXCLUDED.definition, broader = EXCLUDED.broader
         WHERE (classes.wnid, classes.name, classes.names, classes.definition, classes.broader)
               IS DISTINCT FROM (EXCLUDED.wnid, EXCLUDED.name, EXCLUDED.names, EXCLUDED.definition, EXCLUDED.broader)
        """), params)


_BY_CLASSES = sa.text(
    """
    WITH q AS (
        SELECT * FROM unnest(CAST(:classes AS int[]), CAST(:weights AS real[])) AS q(class_index, weight)
    ), scored AS (
        SELECT ic.image_id, ic.run_id, sum(power(coalesce(ic.score, sqrt(ic.p)), :power) * q.weight) AS score
        FROM image_classes ic JOIN q USING (class_index)
        GROUP BY ic.image_id, ic.run_id
        ORDER BY score DESC, ic.image_id
        LIMIT :k
    )
    SELECT s.image_id, s.run_id, s.score, i.label, i.description, i.source, i.source_url, i.page_url,
           i.wikidata_item, i.licence, i.licence_url, i.author, i.attribution, i.width, i.height, i.format,
           ARRAY(SELECT t.tag FROM image_tags t WHERE t.image_id = i.id ORDER BY t.rank LIMIT 5) AS tags
    FROM scored s JOIN images i ON i.id = s.image_id
    ORDER BY s.score DESC, s.image_id
    """
)


def images_by_classes(conn: sa.Connection, classes: Sequence[int], weights: Sequence[float], k: int,
                      power: float = 1.0) -> list[dict]:
    """The ``k`` images scoring highest by Σ score(class, image) ** power × weight(class), with their run and metadata.

    ``score`` is the stored, neighbour-smoothed √p (migration 0008); rows stored before it have none and use
    sqrt(p(class | image)) instead.

    ``image_classes`` is the inverted index: only the images holding one of ``classes`` among their top classes are
    read. Every row carries its ``run_id`` (one statement, so one run).
    """
    rows = conn.execute(_BY_CLASSES, {"classes": list(map(int, classes)), "weights": list(map(float, weights)),
                                      "k": k, "power": power}).mappings().all()
    return [dict(r) for r in rows]


def tags_of(conn: sa.Connection, image_id: int, limit: int = 20) -> tuple[bool, list[dict]]:
    """(image exists, its tags in the order shown: tag, score, direct, run_id) from the serving image run."""
    rows = conn.execute(sa.text(
        """
        SELECT i.id, t.tag, t.score, t.direct, t.run_id
        FROM images i LEFT JOIN image_tags t ON t.image_id = i.id
        WHERE i.id = :i
        ORDER BY t.rank NULLS LAST
        LIMIT :n
        """), {"i": image_id, "n": limit}).mappings().all()
    if not rows:
        return False, []
    return True, [{"tag": r["tag"], "score": round(float(r["score"]), 4), "direct": r["direct"],
                   "run_id": r["run_id"]} for r in rows if r["tag"] is not None]


def shown_tags_of(conn: sa.Connection, image_ids: Sequence[int], k: int) -> dict[int, list[str]]:
    """{image id: the ``k`` tags it shows first} in the serving image run (image_tags.rank)."""
    rows = conn.execute(sa.text(
        """
        SELECT image_id, array_agg(tag ORDER BY rank) FROM image_tags
        WHERE image_id = ANY(:ids) AND rank <= :k GROUP BY image_id
        """), {"ids": list(image_ids), "k": k}).all()
    return {r[0]: list(r[1]) for r in rows}


def top_classes_of(conn: sa.Connection, image_ids: Sequence[int], k: int) -> dict[int, list[int]]:
    """{image id: its ``k`` strongest class indices, strongest first} in the serving image run: by the stored,
    neighbour-smoothed score (by p for rows stored before migration 0008)."""
    rows = conn.execute(sa.text(
        """
        SELECT image_id, (array_agg(class_index ORDER BY coalesce(score, sqrt(p)) DESC))[1:CAST(:k AS int)]
        FROM image_classes WHERE image_id = ANY(:ids) GROUP BY image_id
        """), {"ids": list(image_ids), "k": k}).all()
    return {r[0]: list(r[1]) for r in rows}


def serving_rows(conn: sa.Connection, table: str) -> list[tuple]:
    """Every row of ``image_classes`` or ``image_tags`` (the serving image run's), without its run id, in the
    column order of IMAGE_CLASS_COLUMNS / IMAGE_TAG_COLUMNS; for a new run of the same images to carry over."""
    columns = {"image_classes": IMAGE_CLASS_COLUMNS, "image_tags": IMAGE_TAG_COLUMNS}[table]
    kept = [c for c in columns if c != "run_id"]
    return [tuple(r) for r in conn.execute(sa.text(f"SELECT {', '.join(kept)} FROM {table} ORDER BY image_id"))]
