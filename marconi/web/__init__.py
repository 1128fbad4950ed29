"""Web pages: home, reverse image search, radio and status; plain HTML, CSS and vanilla JS over the JSON API.

Pages are thin templates: the browser calls the same JSON endpoints as any other client. Static files are
served from this package with a content hash in their URL, so they can be cached for a year.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from flask import Blueprint, current_app, render_template, request, url_for

STATIC = Path(__file__).parent / "static"

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")


@bp.app_context_processor
def _links():
    rules = {r.rule for r in current_app.url_map.iter_rules()}
    return {"openapi_url": "/api/openapi.json" if "/api/openapi.json" in rules else None}


@cache
def _digest(filename: str) -> str:
    return hashlib.sha256((STATIC / filename).read_bytes()).hexdigest()[:10]


@bp.app_template_global()
def asset(filename: str) -> str:
    """URL of a static file, versioned by its content so browsers can cache it forever."""
    return url_for("web.static", filename=filename, v=_digest(filename))


@bp.after_request
def _cache_assets(response):
    """Long-lived caching for versioned assets; pages themselves are always revalidated."""
    if request.endpoint == "web.static" and request.args.get("v"):
        response.cache_control.public = True
        response.cache_control.max_age = 31_536_000
        response.cache_control.immutable = True
    elif response.mimetype == "text/html":
        response.cache_control.no_cache = True
    return response


@bp.app_template_filter()
def filesize(n: int | None) -> str:
    """Return a byte count as a short human string, e.g. ``12.3 MB``."""
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} bytes"


@bp.app_template_filter()
def when(value: datetime | str | None) -> str:
    """Return a timestamp as ``YYYY-MM-DD HH:MM UTC`` (ISO strings are accepted)."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


@bp.get("/")
def home():
    """The home page: the three ways to use Marconi."""
    return render_template("home.html", page="home")


@bp.get("/search")
def search():
    """Reverse image search: upload or photograph a picture, see the closest images."""
    config = current_app.config["MARCONI"]
    return render_template("search.html", page="search", max_upload_bytes=config.max_upload_bytes,
                           images_enabled="images.search" in current_app.view_functions,
                           url_fetch=config.url_fetch)


@bp.get("/radio")
def radio():
    """Song radio: pick seed songs, get a playlist."""
    from marconi.recommenders.request import MAX_SEEDS, MAX_SIZE

    return render_template("radio.html", page="radio", max_size=MAX_SIZE, max_seeds=MAX_SEEDS)


@bp.get("/status")
def status():
    """What is loaded, which model runs serve, and how big the database is (the /api/status data, as a page)."""
    from marconi.api import engine
    from marconi.api.health import status_report

    with engine().connect() as conn:
        data = status_report(conn)
    return render_template("status.html", page="status", status=data)
