"""Health, readiness and status: /healthz, /readyz, /api/status."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Blueprint, jsonify

from marconi.api import engine, read_engine
from marconi.api.errors import RETRY_AFTER_S
from marconi.api.models import Healthy, Ready, Status
from marconi.api.openapi import documented
from marconi.db import migrate
from marconi.db.replicas import ReadRouter
from marconi.db.runs import json_ready
from marconi.db.status import counts, database_bytes
from marconi.runs import KINDS, serving_run

bp = Blueprint("health", __name__)


# An absolute POSIX file path (not the path part of a URL): each directory, then the file name, captured.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s/'\"]+/)+([^\s/'\"]+)")


def without_paths(value):
    """Return ``value`` (JSON-like data) with every absolute file path in its strings replaced by the file's name.

    Model runs record where their weights were loaded from (``.../site-packages/.../efficientnet_lite0.pth``); the
    name says which file it was without showing how the server's disks are laid out. What is stored is unchanged.
    """
    if isinstance(value, dict):
        return {k: without_paths(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_paths(v) for v in value]
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(r"\1", value)
    return value


def public_status(conn: sa.Connection) -> dict:
    """Return :func:`status_report` as shown to anyone who asks (the API and the status page): no server paths."""
    return without_paths(status_report(conn))


def readiness(conn: sa.Connection) -> dict:
    """Return {status, songs_model, images_model}: ready when at least one model run serves."""
    runs = {kind: serving_run(conn, kind) for kind in KINDS}
    ready = any(runs.values())
    return {"status": "ready" if ready else "no model serving",
            **{f"{kind}_model": run and run["id"] for kind, run in runs.items()}}


def status_report(conn: sa.Connection) -> dict:
    """Return what is loaded (row counts), which model runs serve, and the database size in bytes."""
    return {"counts": counts(conn), "serving": {kind: json_ready(serving_run(conn, kind)) for kind in KINDS},
            "database_bytes": database_bytes(conn)}


@bp.get("/healthz")
@documented("healthz", (Healthy, "OK"))
def healthz():
    """The process is up."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@documented("readyz", (Ready, "Ready"), also={503: (Ready, "Not ready")})
def readyz():
    """The database answers, its schema is the one this Marconi needs, and a model is serving (else 503)."""
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    try:
        with engine().connect() as conn:
            outdated = migrate.outdated(migrate.current_revision(conn))
            if outdated is not None:
                return jsonify({"status": "schema outdated", "error": outdated.message}), 503, headers
            body = readiness(conn)
    except sa.exc.SQLAlchemyError as exc:
        return jsonify({"status": "unavailable", "error": f"database unreachable: {exc.__class__.__name__}"}), 503, \
            headers
    if body["status"] != "ready":
        return jsonify(body), 503, headers
    return jsonify(body), 200


@bp.get("/api/status")
@documented("status", (Status, "Status"), (503,))
def status():
    """What is loaded, which model runs serve, the database size (no server file paths), and each read replica
    (password hidden): healthy or not, its replay lag in seconds and bytes."""
    with engine().connect() as conn:
        report = public_status(conn)
    router = read_engine()
    return jsonify({**report, "replicas": router.status() if isinstance(router, ReadRouter) else []})
