"""Optional protections for the endpoints that cost the most to answer: photo uploads and URL fetches.

Each is off until configured (the README's configuration table has the settings):

- a rate limit per client address (Flask-Limiter; ``MARCONI_RATE_LIMIT_UPLOADS``, counted in
  ``MARCONI_RATE_LIMIT_STORAGE``): past it, 429 in the API's error shape, with ``Retry-After``;
- an API key (``MARCONI_API_KEY``) sent as ``X-API-Key`` or ``Authorization: Bearer …``: without it, 401;
- CORS (flask-cors; ``MARCONI_CORS_ORIGINS``): pages on those origins may call ``/api/`` from a browser.

``init_protections(app)`` applies them by endpoint name once the blueprints are registered, so views stay unaware.
"""

from __future__ import annotations

import hmac
import re

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from marconi.config import Config, ConfigError
from marconi.errors import MarconiError

# A photo, an image URL or words to search by, and a photo to tag. The search page's photo and URL searches post to
# the first; its word searches use GET /api/images/search, which stays open.
EXPENSIVE_ROUTES = (("POST", "/api/images/search"), ("POST", "/api/images/tags"))
RATE_LIMIT_SCOPE = "photo-uploads"  # one budget per client address for all of them
CORS_PATHS = r"/api/.*"
CORS_ALLOW_HEADERS = ("Content-Type", "X-API-Key", "Authorization", "X-Request-ID")
CORS_EXPOSE_HEADERS = ("Retry-After", "X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                       "X-RateLimit-Reset")
CORS_MAX_AGE_S = 600  # how long a browser may reuse a preflight's answer


class ApiKeyRequired(MarconiError):
    """The endpoint needs this server's API key, and the request did not carry it."""

    status = 401
    code = "api_key_required"


def init_protections(app: Flask) -> None:
    """Apply the configured protections to ``app`` (call after its blueprints are registered)."""
    cfg: Config = app.config["MARCONI"]
    endpoints = expensive_endpoints(app)
    if cfg.api_key is not None:
        _require_api_key(app, cfg.api_key.get_secret_value(), endpoints)
    if cfg.rate_limit_uploads:
        _limit_rate(app, cfg, endpoints)
    if cfg.cors_origins:
        _allow_origins(app, cfg.cors_origins)


def expensive_endpoints(app: Flask) -> tuple[str, ...]:
    """The names of the endpoints that answer ``EXPENSIVE_ROUTES`` (found by route, so a renamed view stays
    protected; a route that is gone is a bug, and says so)."""
    adapter = app.url_map.bind("localhost")
    try:
        return tuple(adapter.match(path, method)[0] for method, path in EXPENSIVE_ROUTES)
    except HTTPException as err:
        raise RuntimeError(f"a protected route is not served ({err.name}): update EXPENSIVE_ROUTES in "
                           f"{__name__}") from None


# ----------------------------------------------------------------------------------------------------- API key
def presented_key() -> str | None:
    """The API key the request carries: its ``X-API-Key`` header, else an ``Authorization: Bearer`` token."""
    given = request.headers.get("X-API-Key")
    if given is None:
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else None
    return given


def _require_api_key(app: Flask, key: str, endpoints: tuple[str, ...]) -> None:
    expected = key.encode()

    @app.before_request
    def _check_api_key():
        if request.endpoint not in endpoints or request.method == "OPTIONS":  # a CORS preflight carries no key
            return
        given = presented_key()
        if given is None:
            raise ApiKeyRequired("this server needs an API key for photo and URL searches: send it in the X-API-Key "
                                 "header (or as Authorization: Bearer <key>)")
        if not hmac.compare_digest(given.encode(), expected):  # constant time: the key cannot be guessed bytewise
            raise ApiKeyRequired("the API key sent is not this server's: check the X-API-Key header (or the "
                                 "Authorization: Bearer token)", code="bad_api_key")

    @app.after_request
    def _say_how_to_authenticate(response):
        if response.status_code == 401 and request.endpoint in endpoints:
            response.headers.setdefault("WWW-Authenticate", 'Bearer realm="marconi"')
        return response


# -------------------------------------------------------------------------------------------------- rate limit
def _limit_rate(app: Flask, cfg: Config, endpoints: tuple[str, ...]) -> None:
    """One shared limit per client address over ``endpoints``, kept in ``cfg.rate_limit_storage``; if a shared store
    stops answering, each worker counts in memory until it is back."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address
    from limits.errors import ConfigurationError

    @app.after_request  # registered before the limiter's own, so it runs after it: "Retry-After: 0" would invite
    def _retry_after_at_least_one_second(response):  # an immediate retry that is refused again
        if response.status_code == 429 and response.headers.get("Retry-After") == "0":
            response.headers["Retry-After"] = "1"
        return response

    shared_store = not cfg.rate_limit_storage.startswith("memory://")
    try:  # a moving window: each client's last requests are kept, so a burst at a window's edge cannot double it
        limiter = Limiter(get_remote_address, app=app, storage_uri=cfg.rate_limit_storage, strategy="moving-window",
                          headers_enabled=True, key_prefix="marconi", swallow_errors=shared_store,
                          in_memory_fallback_enabled=shared_store)
    except (ConfigurationError, NotImplementedError) as err:  # a missing client library; memcached: no moving window
        raise ConfigError(f"MARCONI_RATE_LIMIT_STORAGE cannot be used: {err} (memory:// needs nothing; redis:// "
                          "needs `pip install redis`)", "rate_limit_storage") from None
    message = (f"too many photo and URL searches from your address (the limit is {cfg.rate_limit_uploads}): wait a "
               "little and try again; Retry-After says how many seconds")
    uploads = limiter.shared_limit(cfg.rate_limit_uploads, scope=RATE_LIMIT_SCOPE, error_message=message)
    for endpoint in endpoints:
        app.view_functions[endpoint] = uploads(app.view_functions[endpoint])


# -------------------------------------------------------------------------------------------------------- CORS
def _allow_origins(app: Flask, origins: tuple[str, ...]) -> None:
    """CORS on /api/ for ``origins`` (``*``: any); pages, /healthz and the rest stay same-origin only."""
    from flask_cors import CORS

    # Each origin is matched whole, as it is written (an IPv6 origin's brackets are not a regex).
    allowed = "*" if "*" in origins else [re.compile(re.escape(o) + r"\Z", re.IGNORECASE) for o in origins]
    CORS(app, resources={CORS_PATHS: {"origins": allowed}}, allow_headers=list(CORS_ALLOW_HEADERS),
         expose_headers=list(CORS_EXPOSE_HEADERS), max_age=CORS_MAX_AGE_S)
