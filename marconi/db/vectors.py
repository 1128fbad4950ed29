"""Model runs and their vectors: build a staging table, index it, swap it in atomically.

A reader never sees half a model: the serving table is replaced by a fully built and indexed staging table with
renames inside one transaction, and the run is marked serving in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from marconi.db.copy import copy_rows

LIVE_TABLES = {"songs": "song_vectors", "images": "image_vectors"}


def has_pgvector(conn: sa.Connection, table: str = "song_vectors") -> bool:
    """Return True when ``table`` has the pgvector ``hvec`` column (pgvector installed at migration time)."""
    return bool(conn.execute(sa.text(
        "SELECT 1 FROM information_schema.columns WHERE table_name = :t AND column_name = 'hvec'"), {"t": table}
    ).first())


def create_run(conn: sa.Connection, kind: str, model: str, params: dict, dims: int) -> int:
    """Record a new model run in state 'building'; return its id."""
    return conn.execute(sa.text(
        "INSERT INTO model_runs (kind, model, params, dims) VALUES (:k, :m, CAST(:p AS jsonb), :d) RETURNING id"),
        {"k": kind, "m": model, "p": json.dumps(params), "d": dims}).scalar_one()


def fail_run(conn: sa.Connection, run_id: int, reason: str) -> None:
    """Mark a run failed with the reason in its metrics."""
    conn.execute(sa.text(
        "UPDATE model_runs SET status = 'failed', finished_at = now(), "
        "metrics = metrics || jsonb_build_object('error', CAST(:r AS text)) WHERE id = :i"), {"i": run_id, "r": reason})


def save_artifact(conn: sa.Connection, run_id: int, name: str, data: bytes) -> None:
    """Store a binary artifact (e.g. a fitted PCA as .npz bytes) with its run."""
    conn.execute(sa.text(
        "INSERT INTO model_artifacts (run_id, name, data) VALUES (:r, :n, :d) "
        "ON CONFLICT (run_id, name) DO UPDATE SET data = EXCLUDED.data"), {"r": run_id, "n": name, "d": data})


def load_artifact(conn: sa.Connection, run_id: int, name: str) -> bytes | None:
    """Return an artifact's bytes, or None."""
    row = conn.execute(sa.text("SELECT data FROM model_artifacts WHERE run_id = :r AND name = :n"),
                       {"r": run_id, "n": name}).first()
    return bytes(row[0]) if row else None


def serving_run(conn: sa.Connection, kind: str) -> dict | None:
    """Return the serving run of ``kind`` as a dict, or None when nothing serves yet."""
    row = conn.execute(sa.text(
        "SELECT id, kind, model, params, dims, n_vectors, status, started_at, finished_at, metrics "
        "FROM model_runs WHERE kind = :k AND status = 'serving'"), {"k": kind}).mappings().first()
    return dict(row) if row else None


def list_runs(conn: sa.Connection, limit: int = 20) -> list[dict]:
    """Return the most recent model runs, newest first."""
    rows = conn.execute(sa.text(
        "SELECT id, kind, model, params, dims, n_vectors, status, started_at, finished_at, metrics "
        "FROM model_runs ORDER BY id DESC LIMIT :n"), {"n": limit}).mappings().all()
    return [dict(r) for r in rows]


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


def load_staging(conn: sa.Connection, staging: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """COPY rows into the staging table; return how many."""
    return copy_rows(conn, staging, columns, rows)


def index_staging(conn: sa.Connection, live: str, hnsw: bool = False) -> None:
    """Build on the staging table every index the live table has (plus HNSW on hvec when asked), then ANALYZE."""
    staging = staging_name(live)
    defs = conn.execute(sa.text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :t"),
        {"t": live}).all()
    for name, definition in defs:
        if name.endswith("_hvec_hnsw"):
            continue
        new_def = definition.replace(f"INDEX {name} ON", f"INDEX {name}_staging ON", 1)
        new_def = new_def.replace(f" ON {_qualified(conn, live)} ", f" ON {staging} ", 1).replace(
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
    conn.execute(sa.text(f"ANALYZE {staging}"))


def _qualified(conn: sa.Connection, table: str) -> str:
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
    return f"{schema}.{table}"


def swap_in(conn: sa.Connection, kind: str, run_id: int, n_vectors: int, metrics: dict | None = None) -> None:
    """Replace the live vector table by the staging one and mark ``run_id`` serving, all in the caller's transaction."""
    live = LIVE_TABLES[kind]
    staging = staging_name(live)
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
    conn.execute(sa.text(
        "UPDATE model_runs SET status = 'retired' WHERE kind = :k AND status = 'serving'"), {"k": kind})
    conn.execute(sa.text(
        "UPDATE model_runs SET status = 'serving', finished_at = now(), n_vectors = :n, "
        "metrics = metrics || CAST(:m AS jsonb) WHERE id = :i"),
        {"n": n_vectors, "m": json.dumps(metrics or {}), "i": run_id})
