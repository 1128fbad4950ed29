"""Health, readiness and status."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from marconi.db.ingest import counts
from marconi.db.vectors import serving_run

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """The database answers and at least one model is serving."""
    try:
        with current_app.extensions["marconi.engine"].connect() as conn:
            songs = serving_run(conn, "songs")
            images = serving_run(conn, "images")
    except sa.exc.SQLAlchemyError as exc:
        return jsonify({"status": "unavailable", "error": f"database unreachable: {exc.__class__.__name__}"}), 503
    ready = bool(songs or images)
    body = {"status": "ready" if ready else "no model serving", "songs_model": songs and songs["id"],
            "images_model": images and images["id"]}
    return jsonify(body), 200 if ready else 503


@bp.get("/api/status")
def status():
    """What is loaded, which model runs serve, and the database size."""
    with current_app.extensions["marconi.engine"].connect() as conn:
        c = counts(conn)
        runs = {k: serving_run(conn, k) for k in ("songs", "images")}
        size = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
    for r in runs.values():
        if r:
            for key in ("started_at", "finished_at"):
                r[key] = r[key].isoformat() if r[key] else None
    return jsonify({"counts": c, "serving": runs, "database_bytes": size})
