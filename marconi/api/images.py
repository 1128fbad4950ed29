"""Image search and image files: POST /api/images/search, GET /api/images/<id>, /images/<id>[/thumbnail]."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request, url_for

from marconi.api.errors import ApiError
from marconi.api.songs import int_arg

bp = Blueprint("images", __name__)
log = logging.getLogger(__name__)

STATUS_FOR_CODE = {"empty": 400, "not_an_image": 400, "truncated": 400, "too_many_pixels": 413,
                   "unsupported_format": 415}
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp",
        "TIFF": "image/tiff"}
CONFIDENT = 0.5


def register(app) -> None:
    """Attach the blueprint and a per-process searcher to the app."""
    from marconi.fetch import parse_networks
    from marconi.images import ImageSearcher

    config = app.config["MARCONI"]
    try:
        app.extensions["marconi.url_fetch_allow"] = parse_networks(config.url_fetch_allow_networks)
    except ValueError as exc:
        raise SystemExit(f"MARCONI_URL_FETCH_ALLOW_NETWORKS is not a comma-separated list of networks such as "
                         f"'10.1.0.0/16,192.168.5.7/32': {exc}") from None
    app.extensions["marconi.image_searcher"] = ImageSearcher(config)
    app.register_blueprint(bp)


def _engine():
    return current_app.extensions["marconi.engine"]


def _links(m: dict) -> dict:
    """Public fields of a match, with URLs to the pixels and to Wikidata."""
    item = m.get("wikidata_item")
    return {
        "id": m["id"], "label": m["label"], "description": m["description"],
        "thumbnail_url": url_for("images.thumbnail", image_id=m["id"]),
        "image_url": url_for("images.original", image_id=m["id"]),
        "source_url": m["source_url"] if (m["source_url"] or "").startswith("http") else None,
        "page_url": m["page_url"], "wikidata_url": f"https://www.wikidata.org/wiki/{item}" if item else None,
        "licence": m["licence"], "licence_url": m["licence_url"], "author": m["author"],
        "attribution": m["attribution"], "width": m["width"], "height": m["height"],
        "distance": m.get("distance"), "similarity": m.get("similarity"),
    }


@bp.post("/api/images/search")
def search():
    """Multipart field ``image``, or JSON ``{"url": ...}`` (+ optional ``k``) → similar stored images + confidence."""
    from marconi.embed.imageio import ImageError, load_image
    from marconi.images import NoImageModel

    config = current_app.config["MARCONI"]
    if request.is_json:
        data, source, k = _fetch_from_json(config)
    else:
        k = int_arg("k", 10, 1, 50) if "k" in request.args else _form_k()
        if "image" not in request.files:
            raise ApiError("send the photo as multipart/form-data field 'image', e.g. curl -F image=@cat.jpg "
                           f"{request.host_url}api/images/search, or JSON {{\"url\": \"https://…/cat.jpg\"}}", 400)
        data, source = request.files["image"].read(), None
    try:
        img = load_image(data, max_pixels=config.max_image_pixels)
    except ImageError as exc:
        raise ApiError(str(exc), STATUS_FOR_CODE.get(exc.code, 400), code=exc.code) from None
    try:
        with _engine().connect() as conn:
            result = current_app.extensions["marconi.image_searcher"].search(
                conn, img, k, rerank=config.image_rerank)
    except NoImageModel as exc:
        raise ApiError(str(exc), 503) from None
    query = {"width": img.width, "height": img.height}
    if source:
        query["url"] = source
    return _answer(result, query)


def _answer(result: dict, query: dict):
    confident = result["confidence"] >= CONFIDENT
    message = ("good match" if confident else
               "nothing in the collection looks much like this photo; the closest images are shown anyway")
    return jsonify({"model_run": result["model_run"], "encoder": result["encoder"],
                    "confidence": result["confidence"], "confident": confident, "message": message,
                    "query": query, "matches": [_links(m) for m in result["matches"]]})


@bp.get("/api/images/<int:image_id>/similar")
def similar(image_id: int):
    """More like this: the images most similar to a stored one (its stored vectors are the query)."""
    from marconi.db.neighbours import images_by_id
    from marconi.images import NoImageModel

    k = int_arg("k", 10, 1, 50)
    config = current_app.config["MARCONI"]
    try:
        with _engine().connect() as conn:
            meta = images_by_id(conn, [image_id]).get(image_id)
            if meta is None:
                raise ApiError(f"no image with id {image_id}", 404)
            result = current_app.extensions["marconi.image_searcher"].similar(conn, image_id, k,
                                                                              rerank=config.image_rerank)
    except NoImageModel as exc:
        raise ApiError(str(exc), 503) from None
    if result is None:
        raise ApiError(f"image {image_id} is not in the serving index yet: run `marconi encode images`", 404)
    return _answer(result, {"image_id": image_id, "width": meta["width"], "height": meta["height"],
                            "thumbnail_url": url_for("images.thumbnail", image_id=image_id)})


def _fetch_from_json(config) -> tuple[bytes, str, int]:
    """Read ``{"url": ..., "k": ...}`` and download the image under marconi.fetch's rules."""
    from marconi.fetch import FetchError, fetch_image_bytes

    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError('the JSON body must be an object such as {"url": "https://example.org/cat.jpg", "k": 10}',
                       400)
    unknown = sorted(set(body) - {"url", "k"})
    if unknown:
        raise ApiError(f"unknown field(s) {unknown}: send 'url' and optionally 'k'", 400)
    k = body.get("k", int_arg("k", 10, 1, 50) if "k" in request.args else 10)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 50:
        raise ApiError("'k' must be an integer between 1 and 50", 400)
    if "url" not in body:
        raise ApiError("send 'url' in the JSON body, or upload the photo as multipart field 'image'", 400)
    if not config.url_fetch:
        raise ApiError("this server does not fetch URLs (MARCONI_URL_FETCH=0); upload the photo as multipart "
                       "field 'image' instead", 403, code="url_fetch_disabled")
    t0 = time.perf_counter()
    try:
        data = fetch_image_bytes(body["url"], max_bytes=config.max_upload_bytes, timeout=config.url_fetch_timeout,
                                 allow_networks=current_app.extensions["marconi.url_fetch_allow"])
    except FetchError as exc:
        log.info("URL fetch refused or failed (%s): %s", exc.code, exc)
        raise ApiError(str(exc), exc.status, code=exc.code) from None
    log.info("fetched %d bytes from %s in %.0f ms", len(data), urlsplit(body["url"].strip()).hostname,
             (time.perf_counter() - t0) * 1000)
    return data, body["url"].strip(), k


def _form_k() -> int:
    raw = request.form.get("k")
    if raw in (None, ""):
        return 10
    try:
        k = int(raw)
    except ValueError:
        raise ApiError("'k' must be an integer", 400) from None
    if not 1 <= k <= 50:
        raise ApiError("'k' must be between 1 and 50", 400)
    return k


@bp.get("/api/images/<int:image_id>")
def metadata(image_id: int):
    """One image's metadata and links."""
    from marconi.db.neighbours import images_by_id

    with _engine().connect() as conn:
        rows = images_by_id(conn, [image_id])
    if image_id not in rows:
        raise ApiError(f"no image with id {image_id}", 404)
    return jsonify(_links({**rows[image_id], "id": image_id}))


def _serve_bytes(image_id: int, column: str, mimetype_from_format: bool) -> Response:
    query = {"data": "SELECT b.data, i.sha256, i.format FROM images i JOIN image_blobs b ON b.image_id = i.id "
                     "WHERE i.id = :i",
             "thumbnail": "SELECT b.thumbnail, i.sha256, i.format FROM images i JOIN image_blobs b ON "
                          "b.image_id = i.id WHERE i.id = :i"}[column]
    with _engine().connect() as conn:
        row = conn.execute(sa.text(query), {"i": image_id}).first()
    if row is None:
        raise ApiError(f"no image with id {image_id}", 404)
    mimetype = MIME.get(row[2], "application/octet-stream") if mimetype_from_format else "image/jpeg"
    resp = Response(bytes(row[0]), mimetype=mimetype)
    resp.set_etag(row[1] + ("" if column == "data" else "-thumb"))
    resp.cache_control.public = True
    resp.cache_control.max_age = 31_536_000
    resp.cache_control.immutable = True
    return resp.make_conditional(request)


@bp.get("/images/<int:image_id>")
def original(image_id: int):
    """The stored image bytes (content-addressed, cached for a year)."""
    return _serve_bytes(image_id, "data", True)


@bp.get("/images/<int:image_id>/thumbnail")
def thumbnail(image_id: int):
    """A JPEG thumbnail, longest side 256 px."""
    return _serve_bytes(image_id, "thumbnail", False)
