"""Web pages: home, reverse image search, one image, radio and status; plain HTML, CSS and vanilla JS over the API.

Pages are thin templates: the browser calls the same JSON endpoints as any other client. Static files are
served from this package with a content hash in their URL, so they can be cached for a year.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from flask import Blueprint, current_app, render_template, request, url_for

from marconi.web import spotify

STATIC = Path(__file__).parent / "static"

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")
bp.register_blueprint(spotify.bp)  # /radio/spotify/login and /callback: "Save to Spotify"


@bp.app_context_processor
def _links():
    rules = {r.rule for r in current_app.url_map.iter_rules()}
    return {"openapi_url": "/api/openapi.json" if "/api/openapi.json" in rules else None,
            "docs_url": "/api/docs" if "/api/docs" in rules else None}


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
def percent(x: float | None) -> str:
    """Return a share as a percentage that never claims more than it is: whole numbers (``62%``), one decimal from
    99.5% (``99.6%`` for 0.9956, which rounds to 100), ``>99.9%`` just below 1, ``100%`` only for exactly 1, and
    ``<1%`` for a small non-zero share. common.js's ``percent`` follows the same rule."""
    x = max(0.0, min(1.0, float(x or 0)))
    if x == 1:
        return "100%"
    if x >= 0.9995:
        return ">99.9%"
    if x >= 0.995:
        return f"{x * 100:.1f}%"
    return "<1%" if 0 < x < 0.005 else f"{round(x * 100)}%"


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


SIMILAR_ON_PAGE = 12
SHOWN_ORIGINAL = ("JPEG", "PNG", "GIF", "WEBP")  # originals every browser shows; BMP and TIFF show as thumbnails


def _web_link(url: str | None) -> str | None:
    """``url`` when it is an http(s) address (safe for an href), else None."""
    return url if (url or "").startswith(("http://", "https://")) else None


def _title(image: dict) -> str:
    """A readable title: the file's name from its Commons page or source ("File:A_b.jpg" → "A b"), else "Image N"."""
    for url in (image["page_url"], image["source_url"]):
        name = unquote(PurePosixPath(urlsplit(url or "").path).name).removeprefix("File:")
        stem = name.rsplit(".", 1)[0].replace("_", " ").strip()
        if stem:
            return stem
    return f"Image {image['id']}"


def _similar(conn, image_id: int) -> tuple[list[dict], str | None]:
    """(the images most like this one, nearest first; why there are none, or None) from the serving image run."""
    from marconi.errors import NotFound, Unavailable

    try:
        answer = current_app.extensions["marconi.image_searcher"].similar(conn, image_id, SIMILAR_ON_PAGE)
    except (NotFound, Unavailable) as exc:  # the image is not in the serving run yet, or the run cannot answer
        return [], exc.message
    return answer["matches"], None


@bp.get("/images/<int:image_id>/page")
def image(image_id: int):
    """One image: the picture, its metadata and links, its tags with scores, and the images most like it."""
    from marconi import runs
    from marconi.api import engine
    from marconi.api.images import ANIMATED_FORMATS
    from marconi.db import image_words
    from marconi.db import images as images_db
    from marconi.errors import NotFound

    with engine().connect() as conn:
        row = images_db.images_by_id(conn, [image_id]).get(image_id)
        if row is None:
            raise NotFound(f"no image with id {image_id}")
        _, tags = image_words.tags_of(conn, image_id)
        serving = runs.serving_run(conn, "images")
        similar, similar_note = _similar(conn, image_id) if serving else ([], None)
    links = {"page": _web_link(row["page_url"]), "source": _web_link(row["source_url"]),
             "licence": _web_link(row["licence_url"]),
             "wikidata": f"https://www.wikidata.org/wiki/{row['wikidata_item']}" if row["wikidata_item"] else None}
    return render_template("image.html", page="image", image=row, title=_title(row), links=links, tags=tags,
                           serving=serving, similar=similar, similar_note=similar_note,
                           shown_original=row["format"] in SHOWN_ORIGINAL, animated=ANIMATED_FORMATS)


@bp.get("/radio")
def radio():
    """Song radio: songs (and artists, tags or a prompt where the API takes them) in; a playlist to steer out."""
    from marconi.recommenders.request import MAX_EXCLUDE, MAX_SEEDS, MAX_SIZE

    rules = {r.rule for r in current_app.url_map.iter_rules()}
    suggest = {f"{name}_api": f"/api/{name}" if f"/api/{name}" in rules else None for name in ("artists", "tags")}
    return render_template("radio.html", page="radio", max_size=MAX_SIZE, max_seeds=MAX_SEEDS,
                           max_exclude=MAX_EXCLUDE, **suggest)


@bp.get("/status")
def status():
    """What is loaded, which model runs serve, and how big the database is (the /api/status data, as a page)."""
    from marconi.api import engine
    from marconi.api.health import public_status

    with engine().connect() as conn:
        data = public_status(conn)
    return render_template("status.html", page="status", status=data)
