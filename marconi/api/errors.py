"""Errors in one place: every failure leaves the API as JSON ``{"error": message, "status": ..., ...}``, and a
browser asking for a page gets the same message as a page of the site.

Views and the functions they call raise ``marconi.errors`` exceptions (``BadRequest``, ``NotFound``, ...); the
handler here turns each into ``err.to_dict()`` plus the request id, with ``err.status``. werkzeug's HTTP errors
(unknown route, wrong method, upload too large) get the same shape, and anything unexpected is logged and
answered with a 500 that carries the request id to report.
"""

from __future__ import annotations

import logging

import psycopg2.errors
import sqlalchemy as sa
from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from marconi.errors import MarconiError, Unavailable

log = logging.getLogger(__name__)

_CODE_FOR_STATUS = {cls.status: cls.code for cls in MarconiError.__subclasses__()}


def _wants_page() -> bool:
    """True for a browser asking for a page (not under /api/, and preferring HTML to JSON): it gets the error as a
    page of the site. Everyone else (API clients, curl, fetch()) gets JSON."""
    if request.path.startswith("/api/") or "web" not in current_app.blueprints:
        return False
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


RETRY_AFTER_S = 5  # a 503 says when to try again


def _respond(body: dict, headers: dict | None = None):
    """Return the response for an error body, with the request id added: JSON, or a page for a browser.

    A 503 (a dependency down, a schema to upgrade) carries ``Retry-After``."""
    rid = getattr(request, "request_id", None) if request else None
    if rid:
        body["request_id"] = rid
    headers = dict(headers or {})
    if body["status"] == 503:
        headers.setdefault("Retry-After", str(RETRY_AFTER_S))
    if request and _wants_page():
        try:
            return render_template("error.html", page="error", error=body), body["status"], headers
        except Exception:  # a broken page must never hide the error itself
            log.exception("rendering the error page failed")
    return jsonify(body), body["status"], headers


def database_error(exc: sa.exc.DBAPIError) -> MarconiError | None:
    """Return the user-facing error for a database failure, or None when it is a bug (to be answered 500).

    The database unreachable or gone away, or a statement past its time limit: 503, try again. A statement that
    fails because the schema is not the one this Marconi was built for (someone ran `marconi db upgrade` from
    another checkout, or a downgrade): 503 saying to upgrade.
    """
    from marconi.db import migrate

    if isinstance(exc.orig, psycopg2.errors.QueryCanceled):
        return Unavailable("the database took too long to answer (statement time limit); try again, or ask for "
                           "less", code="database_timeout")
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or exc.connection_invalidated:
        first_line = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return Unavailable(f"the database is unavailable ({first_line[:200]}); try again in a few seconds",
                           code="database_unavailable")
    try:
        with current_app.extensions["marconi.engine"].connect() as conn:
            return migrate.outdated(migrate.current_revision(conn))
    except sa.exc.SQLAlchemyError:
        return None


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def register(app: Flask) -> None:
    """Map MarconiError, werkzeug HTTP errors and unexpected exceptions to JSON error bodies."""

    @app.errorhandler(MarconiError)
    def _marconi_error(exc: MarconiError):
        if exc.status >= 500:
            log.warning("%s %s: %s %s", request.method, request.path, exc.status, exc.message)
        return _respond(exc.to_dict())

    @app.errorhandler(sa.exc.DBAPIError)
    def _database_error(exc: sa.exc.DBAPIError):
        error = database_error(exc)
        if error is None:
            return _unexpected(exc)
        log.warning("%s %s: %s %s", request.method, request.path, error.status, error.message)
        return _respond(error.to_dict())

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        messages = {
            # an unknown address: a browser gets a page that speaks to people, an API client the way to what exists
            404: "There is no page at this address: the link may be mistyped or out of date." if _wants_page()
            else "no such endpoint: see /api/docs (or /api/openapi.json) for what exists",
            405: f"method {request.method} is not allowed here",
            413: f"upload too large: the limit is {app.config.get('MAX_CONTENT_LENGTH')} bytes",
        }
        status = exc.code or 500
        allow = getattr(exc, "valid_methods", None)
        return _respond({"error": messages.get(status, exc.description or exc.name), "status": status,
                         "code": _CODE_FOR_STATUS.get(status) or _http_code(exc)},
                        {"Allow": ", ".join(sorted(allow))} if allow else None)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond({"error": "internal error: it has been logged; please report it with the request id",
                         "status": 500, "code": "internal"})
