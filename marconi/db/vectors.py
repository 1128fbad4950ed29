"""Vector tables of model runs: build a staging table, index it, and swap it in by renaming.

Each kind of model has its live tables (``LIVE_TABLES``, the first holding the vectors) whose rows all carry the
``run_id`` of the run that wrote them. A build fills ``<live>_staging`` for each and commits them; the swap then
replaces every live table of the kind with renames in one short transaction. Identifiers here are chosen by code,
never by users.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from marconi.db import ann
from marconi.db.copy import copy_rows

LIVE_TABLES = {"songs": ("song_vectors", "song_neighbours", "artist_vectors", "tag_vectors"),
               "images": ("image_vectors", "image_classes", "image_tags")}
# tables a run may leave unstaged: it then serves an empty one (a song run without co-occurrence neighbours
# scores radios by its vectors alone; one without artist or tag vectors answers only seed-song radios)
OPTIONAL_TABLES = frozenset({"song_neighbours", "artist_vectors", "tag_vectors"})


def has_pgvector(conn: sa.Connection, table: str) -> bool:
    """Return True when ``table`` has the pgvector ``hvec`` column (pgvector installed at migration time)."""
    return bool(conn.execute(sa.text(
        "SELECT 1 FROM information_schema.columns WHERE table_name = :t AND column_name = 'hvec'"), {"t": table}
    ).first())


def staging_name(live: str) -> str:
    """Name of the staging table for ``live``."""
    return f"{live}_staging"


def create_staging(conn: sa.Connection, live: str, hvec_dims: int | None = None) -> str:
    """(Re)create an empty, unindexed staging table shaped like ``live``; return its name.

    ``hvec_dims`` types the optional pgvector column for this run's dimensions.
    """
    staging = staging_name(live)
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {staging}"))
    conn.execute(sa.text(f"CREATE TABLE {staging} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    if hvec_dims:
        conn.execute(sa.text(f"ALTER TABLE {staging} ALTER COLUMN hvec TYPE vector({int(hvec_dims)})"))
    return staging


def drop_staging(conn: sa.Connection, live: str) -> None:
    """Drop a leftover staging table of ``live`` (from a build that stopped)."""
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {staging_name(live)}"))


def load_staging(conn: sa.Connection, staging: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """COPY rows into the staging table; return how many."""
    return copy_rows(conn, staging, columns, rows)


def index_staging(conn: sa.Connection, live: str, hnsw: bool = False) -> None:
    """Build on the staging table every index the live table has (plus HNSW on hvec when asked, and IVFFlat too for
    a large catalogue: marconi.db.ann), then ANALYZE."""
    staging = staging_name(live)
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
    defs = conn.execute(sa.text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :t"),
        {"t": live}).all()
    for name, definition in defs:
        if name.endswith(("_hvec_hnsw", ann.IVF_SUFFIX)):  # built below, for this run's dimensions and size
            continue
        new_def = definition.replace(f"INDEX {name} ON", f"INDEX {name}_staging ON", 1)
        new_def = new_def.replace(f" ON {schema}.{live} ", f" ON {staging} ", 1).replace(
            f" ON {live} ", f" ON {staging} ", 1)
        conn.execute(sa.text(new_def))
        if name.endswith("_pkey"):
            conn.execute(sa.text(f"ALTER TABLE {staging} ADD CONSTRAINT {name}_staging PRIMARY KEY USING INDEX "
                                 f"{name}_staging"))
    if hnsw:
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '1GB'"))
        conn.execute(sa.text(
            f"CREATE INDEX {live}_hvec_hnsw_staging ON {staging} USING hnsw (hvec vector_ip_ops) "
            "WITH (m = 16, ef_construction = 128)"))
        ann.index_large_catalogue(conn, staging, live)
    conn.execute(sa.text(f"ANALYZE {staging}"))


def swap_tables(conn: sa.Connection, live: str, lock_timeout_ms: int) -> None:
    """Replace ``live`` by its staging table, in the caller's transaction.

    The live table's ACCESS EXCLUSIVE lock is asked for with ``lock_timeout_ms``, so a reader holding a lock makes
    this raise (SQLSTATE 55P03) instead of making every later reader queue behind the swap.
    """
    staging = staging_name(live)
    conn.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"), {"t": f"{int(lock_timeout_ms)}ms"})
    conn.execute(sa.text(f"LOCK TABLE {live} IN ACCESS EXCLUSIVE MODE"))
    # the new table gets the grants the old one had (e.g. SELECT for the read-only SQL role)
    conn.execute(sa.text(
        f"""
        DO $$ DECLARE r record; BEGIN
          FOR r IN SELECT grantee, privilege_type FROM information_schema.role_table_grants
                   WHERE table_schema = current_schema() AND table_name = '{live}' AND grantee <> current_user
          LOOP
            EXECUTE format('GRANT %s ON %I TO %I', r.privilege_type, '{staging}', r.grantee);
          END LOOP;
        END $$
        """))
    conn.execute(sa.text(f"DROP TABLE {live}"))
    conn.execute(sa.text(f"ALTER TABLE {staging} RENAME TO {live}"))
    idx = conn.execute(sa.text(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :t"), {"t": live}).all()
    for (name,) in idx:
        if name.endswith("_staging"):
            conn.execute(sa.text(f"ALTER INDEX {name} RENAME TO {name[: -len('_staging')]}"))
        elif name == f"{staging}_pkey":
            conn.execute(sa.text(f"ALTER INDEX {name} RENAME TO {live}_pkey"))


def lock_blockers(conn: sa.Connection, live: str) -> list[dict]:
    """Sessions holding a lock on ``live`` (pid, user, state, query start, query), for saying who delays a swap."""
    rows = conn.execute(sa.text(
        """
        SELECT a.pid, a.usename, a.state, a.query_start, left(a.query, 200) AS query
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.relation = to_regclass(:t) AND l.granted AND a.pid <> pg_backend_pid()
        ORDER BY a.query_start
        """), {"t": live}).mappings().all()
    return [dict(r) for r in rows]
