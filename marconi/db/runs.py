"""Model runs: their rows in ``model_runs``, their artifacts, and the per-kind build lock.

A run is ``building`` until its vectors are swapped in (``serving``; the run it replaces becomes ``retired``) or it
stops (``failed``, with the reason in ``metrics.error``). The process building a run holds the kind's advisory
lock for as long as it lives, so a ``building`` run whose lock is free belongs to a process that died.
"""

from __future__ import annotations

import json
from datetime import date, datetime

import sqlalchemy as sa

RUN_COLUMNS = "id, kind, model, params, dims, n_vectors, status, started_at, finished_at, metrics"


def create_run(conn: sa.Connection, kind: str, model: str, params: dict, dims: int) -> int:
    """Record a new model run in state 'building'; return its id."""
    return conn.execute(sa.text(
        "INSERT INTO model_runs (kind, model, params, dims) VALUES (:k, :m, CAST(:p AS jsonb), :d) RETURNING id"),
        {"k": kind, "m": model, "p": json.dumps(params), "d": dims}).scalar_one()


def record_built(conn: sa.Connection, run_id: int, n_vectors: int, metrics: dict, dims: int | None = None) -> None:
    """Store what a finished build measured (before it serves, so readers of its vectors find its metadata)."""
    conn.execute(sa.text(
        "UPDATE model_runs SET n_vectors = :n, metrics = metrics || CAST(:m AS jsonb), dims = coalesce(:d, dims) "
        "WHERE id = :i"), {"n": n_vectors, "m": json.dumps(metrics), "d": dims, "i": run_id})


def mark_serving(conn: sa.Connection, kind: str, run_id: int) -> None:
    """Retire the serving run of ``kind`` and mark ``run_id`` serving (call inside the swap's transaction)."""
    conn.execute(sa.text("UPDATE model_runs SET status = 'retired' WHERE kind = :k AND status = 'serving'"),
                 {"k": kind})
    conn.execute(sa.text("UPDATE model_runs SET status = 'serving', finished_at = now() WHERE id = :i"),
                 {"i": run_id})


def fail_run(conn: sa.Connection, run_id: int, reason: str) -> None:
    """Mark a building run failed with the reason in its metrics (a run that already serves is left alone)."""
    conn.execute(sa.text(
        "UPDATE model_runs SET status = 'failed', finished_at = now(), "
        "metrics = metrics || jsonb_build_object('error', CAST(:r AS text)) WHERE id = :i AND status = 'building'"),
        {"i": run_id, "r": reason[:2000]})


def building_runs(conn: sa.Connection, kind: str) -> list[int]:
    """Ids of the runs of ``kind`` still marked 'building'."""
    return list(conn.execute(sa.text("SELECT id FROM model_runs WHERE kind = :k AND status = 'building' ORDER BY id"),
                             {"k": kind}).scalars())


def serving_run(conn: sa.Connection, kind: str) -> dict | None:
    """Return the serving run of ``kind`` as a dict, or None when nothing serves yet."""
    row = conn.execute(sa.text(f"SELECT {RUN_COLUMNS} FROM model_runs WHERE kind = :k AND status = 'serving'"),
                       {"k": kind}).mappings().first()
    return dict(row) if row else None


def run_by_id(conn: sa.Connection, run_id: int) -> dict | None:
    """Return one run as a dict, or None."""
    row = conn.execute(sa.text(f"SELECT {RUN_COLUMNS} FROM model_runs WHERE id = :i"), {"i": run_id}).mappings().first()
    return dict(row) if row else None


def json_ready(run: dict | None) -> dict | None:
    """A run as :func:`run_by_id` returns it, with its timestamps as ISO strings (JSON's default would be an HTTP
    date); None stays None."""
    if run is None:
        return None
    return {k: v.isoformat() if isinstance(v, date | datetime) else v for k, v in run.items()}


def list_runs(conn: sa.Connection, limit: int = 20) -> list[dict]:
    """Return the most recent model runs, newest first."""
    rows = conn.execute(sa.text(f"SELECT {RUN_COLUMNS} FROM model_runs ORDER BY id DESC LIMIT :n"),
                        {"n": limit}).mappings().all()
    return [dict(r) for r in rows]


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


def try_build_lock(conn: sa.Connection, kind: str) -> bool:
    """Take the session-level lock that says "a process is building a run of ``kind``"; False when held elsewhere.

    Use a connection in autocommit mode that stays open for the whole build: the lock goes with it, so a killed
    builder releases it.
    """
    return bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(hashtext('marconi.build:' || :k))"),
                             {"k": kind}).scalar())


def release_build_lock(conn: sa.Connection, kind: str) -> None:
    """Release the build lock taken by :func:`try_build_lock` on this connection."""
    conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext('marconi.build:' || :k))"), {"k": kind})


def build_lock_holder(conn: sa.Connection, kind: str) -> int | None:
    """The backend pid holding the build lock of ``kind``, or None."""
    return conn.execute(sa.text(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND objid = hashtext('marconi.build:' || :k)::oid LIMIT 1"), {"k": kind}).scalar()
