"""Marconi: a Postgres-backed recommendation service (song radio, reverse image search, plain SQL)."""

from __future__ import annotations

import logging
import time
import uuid

__version__ = "0.1.0"

log = logging.getLogger("marconi")


def create_app(test_config: dict | None = None):
    """Build the Flask app: config → engine (schema checked) → blueprints → JSON error handlers.

    ``test_config`` overrides settings by Config field name (e.g. ``{"database_url": ...}``).
    """
    from flask import Flask, g, request

    from marconi.api import errors, health, radio, songs
    from marconi.config import from_env
    from marconi.db import make_engine, migrate

    config = from_env().with_overrides(**(test_config or {}))
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    engine = make_engine(config, connect_args={"options": f"-c statement_timeout={config.statement_timeout_ms}"})
    migrate.check(engine)

    app = Flask(__name__)
    app.config["MARCONI"] = config
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False
    app.extensions["marconi.engine"] = engine

    @app.before_request
    def _start():
        request.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex[:16]
        g.t0 = time.perf_counter()

    @app.after_request
    def _finish(response):
        response.headers["X-Request-ID"] = request.request_id
        ms = (time.perf_counter() - g.get("t0", time.perf_counter())) * 1000
        log.info("%s %s %s %.1fms rid=%s", request.method, request.path, response.status_code, ms,
                 request.request_id)
        return response

    for bp in (health.bp, songs.bp, radio.bp):
        app.register_blueprint(bp)
    _optional_blueprints(app)
    errors.register(app)
    return app


def _optional_blueprints(app) -> None:
    """Register blueprints added by later stages (images, pages, openapi) when present."""
    from marconi.plugins import optional_modules

    for module in optional_modules(("marconi.api.images", "marconi.api.openapi", "marconi.web")):
        module.register(app)
