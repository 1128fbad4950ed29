"""Marconi: a Postgres-backed recommendation service (song radio, reverse image search, plain SQL)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

__version__ = "0.1.0"

log = logging.getLogger("marconi")

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # an X-Request-ID a client sent is echoed only when it fits

if TYPE_CHECKING:
    from flask import Flask

    from marconi.config import Config


def create_app(config: Config | Mapping | None = None) -> Flask:
    """Build the Flask app: config → logging → engine (schema checked) → blueprints → one error handler.

    ``config`` is a Config, or a dict of overrides by field name applied to the environment's settings
    (e.g. ``{"database_url": ...}``), or None for the environment's settings alone.
    """
    from flask import Flask, g, request

    from marconi import config as settings
    from marconi import protections, runs, web
    from marconi.api import artists, errors, health, images, openapi, radio, songs, words
    from marconi.api.params import AsciiIntConverter
    from marconi.db import make_engine, migrate, replicas
    from marconi.logs import log_safe, setup_logging

    cfg = settings.load(config)
    setup_logging(cfg.log_level)
    connect_args = {"options": f"-c statement_timeout={cfg.statement_timeout_ms}"}
    engine = make_engine(cfg, connect_args=connect_args)
    migrate.check(engine)
    runs.sweep_dead_builders(engine)  # runs left 'building' by a killed job are marked failed, with the reason

    app = Flask(__name__)
    app.url_map.converters["int"] = AsciiIntConverter  # before any route: <int:id> takes ASCII digits only
    app.config["MARCONI"] = cfg
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_upload_bytes
    app.json.sort_keys = False
    app.extensions["marconi.engine"] = engine
    app.extensions["marconi.read_engine"] = replicas.read_engine(cfg, engine, connect_args)  # DATABASE_REPLICA_URLS

    @app.before_request
    def _start():
        given = request.headers.get("X-Request-ID", "")
        request.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        g.t0 = time.perf_counter()

    @app.after_request
    def _finish(response):
        rid = getattr(request, "request_id", None) or uuid.uuid4().hex[:16]  # None if a before_request failed
        response.headers["X-Request-ID"] = rid
        ms = (time.perf_counter() - g.get("t0", time.perf_counter())) * 1000
        # The path is the client's (%0d%0a decodes to CR LF): escaped, it cannot write a log line of its own.
        log.info("%s %s %s %.1fms rid=%s", log_safe(request.method), log_safe(request.path),
                 response.status_code, ms, rid)
        return response

    app.register_blueprint(health.bp)
    app.register_blueprint(songs.bp)
    app.register_blueprint(artists.bp)
    app.register_blueprint(radio.bp)
    app.register_blueprint(images.bp)
    app.register_blueprint(words.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(web.bp)
    errors.register(app)
    protections.init_protections(app)  # rate limits, API key, CORS: each off until configured
    return app
