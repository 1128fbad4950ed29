"""Image search and image files: POST /api/images/search, GET /api/images/<id>, /images/<id>[/thumbnail]."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request, url_for

from marconi.api.errors import ApiError
from marconi.api.songs import int_arg

bp = Blueprint("images", __name__)

STATUS_FOR_CODE = {"empty": 400, "not_an_image": 400, "truncated": 400, "too_many_pixels": 413,
                   "unsupported_format": 415}
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp",
        "TIFF": "image/tiff"}
CONFIDENT = 0.5


def register(app) -> None:
    """Attach the blueprint and a per-process searcher to the app."""
    from marconi.images import ImageSearcher

    app.extensions["marconi.image_searcher"] = ImageSearcher(app.config["MARCONI"])
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
    """Multipart field ``image`` (+ optional ``k``) → the most similar stored images and a confidence."""
    from marconi.embed.imageio import ImageError, load_image
    from marconi.images import NoImageModel

    k = int_arg("k", 10, 1, 50) if "k" in request.args else _form_k()
    if "image" not in request.files:
        raise ApiError("send the photo as multipart/form-data field 'image', e.g. curl -F image=@cat.jpg "
                       f"{request.host_url}api/images/search", 400)
    data = request.files["image"].read()
    try:
        img = load_image(data, max_pixels=current_app.config["MARCONI"].max_image_pixels)
    except ImageError as exc:
        raise ApiError(str(exc), STATUS_FOR_CODE.get(exc.code, 400), code=exc.code) from None
    try:
        with _engine().connect() as conn:
            result = current_app.extensions["marconi.image_searcher"].search(
                conn, img, k, rerank=current_app.config["MARCONI"].image_rerank)
    except NoImageModel as exc:
        raise ApiError(str(exc), 503) from None
    confident = result["confidence"] >= CONFIDENT
    message = ("good match" if confident else
               "nothing in the collection looks much like this photo; the closest images are shown anyway")
    return jsonify({"model_run": result["model_run"], "encoder": result["encoder"],
                    "confidence": result["confidence"], "confident": confident, "message": message,
                    "query": {"width": img.width, "height": img.height},
                    "matches": [_links(m) for m in result["matches"]]})


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
