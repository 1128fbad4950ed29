"""Errors as JSON: every failure leaves the API as ``{"error": message, ...}`` with the right status."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error to report to the client as JSON with ``status``."""

    def __init__(self, message: str, status: int = 400, **details):
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details


def error_body(message: str, status: int, **details):
    """Return a Flask JSON response ``{"error": ..., "status": ...}`` plus details."""
    body = {"error": message, "status": status}
    body.update({k: v for k, v in details.items() if v is not None})
    rid = getattr(request, "request_id", None) if request else None
    if rid:
        body["request_id"] = rid
    return jsonify(body), status


def register(app: Flask) -> None:
    """Map ApiError, HTTP errors and unexpected exceptions to JSON bodies."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_body(exc.message, exc.status, **exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        messages = {
            404: "no such endpoint: see /api/openapi.json for what exists",
            405: f"method {request.method} is not allowed here",
            413: f"upload too large: the limit is {app.config.get('MAX_CONTENT_LENGTH')} bytes",
        }
        return error_body(messages.get(exc.code, exc.description or exc.name), exc.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_body("internal error: it has been logged; please report it with the request id", 500)
