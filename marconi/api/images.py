"""Image search and image files: POST /api/images/search, GET /api/images/<id>[/similar], /images/<id>[/thumbnail].

Views parse their input (``marconi.api.params``), call one function of the per-process
:class:`~marconi.image_search.search.ImageSearcher` (a ``box`` names the part of the photo to search) or of
``marconi.db.images``, and answer; the links to pixels and pages are added here, where URLs are known.
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from pydantic import ConfigDict, PlainValidator, WithJsonSchema
from werkzeug.datastructures import FileStorage

from marconi.api import read_engine
from marconi.api.models import Image, ImageTags, SearchResult
from marconi.api.openapi import documented
from marconi.api.params import form_args, json_body, query_args
from marconi.db import images as images_db
from marconi.errors import BadRequest, NotFound
from marconi.image_search.request import BadBox, JsonSearch, MatchCount, Region, TextQuery

bp = Blueprint("images", __name__)

ANIMATED_FORMATS = ("GIF", "WEBP")  # may hold several frames: the page shows the original file, so they play
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp",
        "TIFF": "image/tiff"}


@bp.record_once
def _setup(state) -> None:
    """Give the app its per-process searcher when the blueprint is registered (after the engine is set)."""
    from marconi.image_search.search import ImageSearcher
    from marconi.image_search.text_search import TextSearcher

    app = state.app
    app.extensions["marconi.image_searcher"] = ImageSearcher(app.config["MARCONI"],
                                                             app.extensions["marconi.read_engine"])
    app.extensions["marconi.text_searcher"] = TextSearcher(app.config["MARCONI"])


def _uploaded_file(value: Any) -> FileStorage:
    if not isinstance(value, FileStorage):
        raise ValueError("must be a file: send the photo as a multipart/form-data file field, e.g. curl -F "
                         "image=@cat.jpg")
    return value


Photo = Annotated[FileStorage, PlainValidator(_uploaded_file), WithJsonSchema({
    "type": "string", "format": "binary", "description": "the photo: JPEG, PNG, GIF, WebP, BMP or TIFF"})]


class PhotoOptions(MatchCount, Region):
    """``k`` and ``box`` in the query string of a photo search (they win over the same form fields)."""


class PhotoTagsForm(Region):
    """Multipart form of POST /api/images/tags: the photo, and the part of it to tag."""

    model_config = ConfigDict(json_schema_extra={
        "example": "curl -F image=@cat.jpg -F box=40,30,200,150 <server>/api/images/tags"})

    image: Photo


class PhotoSearchForm(PhotoTagsForm, MatchCount):
    """Multipart form of POST /api/images/search: the photo, how many matches, and the part of it to search."""

    model_config = ConfigDict(json_schema_extra={
        "example": 'curl -F image=@cat.jpg -F k=10 <server>/api/images/search, or JSON {"url": "https://…/cat.jpg"}'})


def _searcher():
    return current_app.extensions["marconi.image_searcher"]


def _links(m: dict) -> dict:
    """Public fields of an image, with URLs to the pixels and to Wikidata."""
    item = m.get("wikidata_item")
    return {
        "id": m["id"], "label": m["label"], "description": m["description"],
        "thumbnail_url": url_for("images.thumbnail", image_id=m["id"]),
        "image_url": url_for("images.original", image_id=m["id"]),
        "source_url": m["source_url"] if (m["source_url"] or "").startswith("http") else None,
        "page_url": m["page_url"], "wikidata_url": f"https://www.wikidata.org/wiki/{item}" if item else None,
        "licence": m["licence"], "licence_url": m["licence_url"], "author": m["author"],
        "attribution": m["attribution"], "width": m["width"], "height": m["height"],
        "animated": m.get("format") in ANIMATED_FORMATS, "tags": list(m.get("tags") or []),
        "distance": m.get("distance"), "similarity": m.get("similarity"),
    }


def _answer(result: dict):
    """The search answer as JSON, matches with their links (and the stored query image's thumbnail)."""
    query = result["query"]
    if "image_id" in query:
        query = {**query, "thumbnail_url": url_for("images.thumbnail", image_id=query["image_id"])}
    return jsonify({**result, "query": query, "matches": [_links(m) for m in result["matches"]]})


def _box(options: Region, form: PhotoTagsForm):
    """``box`` from the query string, else from the form; None when neither names one."""
    return options.box if options.box is not None else form.box


def _text_answer(text: str, k: int):
    """The answer to a text query (same shape as a photo search's)."""
    with read_engine().connect() as conn:
        return _answer(current_app.extensions["marconi.text_searcher"].search(conn, text, k))


@bp.get("/api/images/search")
@documented("searchImagesByText", (SearchResult, "Matches"), (400, 503), query=TextQuery)
def search_text():
    """Find images by words (ranked from the pixels).

    The words are matched against the classes each image shows (ImageNet classes and their broader WordNet words,
    sentence vectors of all-MiniLM-L6-v2); stored labels are never used. Unknown words give 200 with no matches and
    a message.
    """
    args = query_args(TextQuery)
    return _text_answer(args.q, args.k)


@bp.post("/api/images/search")
@documented("searchImages", (SearchResult, "Matches"), (400, 401, 403, 413, 415, 422, 429, 503),
            query=PhotoOptions, json=JsonSearch, form=PhotoSearchForm)
def search():
    """Reverse image search, or search by words.

    Upload the photo as multipart field `image`, send JSON `{"text": ...}` to search by words, or JSON
    `{"url": ...}` and the server fetches it: public http(s) addresses only (private, loopback and link-local ones
    are refused, after every redirect), at most 3 redirects, MARCONI_URL_FETCH_TIMEOUT seconds in all and
    MARCONI_MAX_UPLOAD_BYTES bytes. With a photo, `box=x,y,w,h` (form field or query string; `"box": [x, y, w, h]`
    in JSON) searches only that part of it.
    """
    if request.is_json:
        body = json_body(JsonSearch)
        k = body.k if "k" in body.model_fields_set else query_args(MatchCount).k
        box = body.box if body.box is not None else query_args(Region).box
        if (body.url is None) == (body.text is None):
            raise BadRequest('send either "url" (an image to fetch) or "text" (words), e.g. {"text": "a red car"}')
        if body.text is not None:
            if box is not None:
                raise BadBox('"box" is a part of a photo: send it with "url" (or a multipart "image"), not "text"')
            return _text_answer(body.text, k)
        return _answer(_searcher().search_url(body.url, k, box=box))
    options = query_args(PhotoOptions)
    form = form_args(PhotoSearchForm)
    k = options.k if "k" in options.model_fields_set else form.k
    return _answer(_searcher().search_bytes(form.image.read(), k, box=_box(options, form)))


@bp.get("/api/images/<int:image_id>/similar")
@documented("similarImages", (SearchResult, "Matches, the image itself left out"), (400, 404, 503), query=MatchCount)
def similar(image_id: int):
    """More like this: the images most similar to a stored one (its stored vectors are the query)."""
    return _answer(_searcher().similar_to(image_id, query_args(MatchCount).k))


@bp.get("/api/images/<int:image_id>/tags")
@documented("imageTags", (ImageTags, "Tags, best first"), (404,))
def tags(image_id: int):
    """An image's tags: its classes' names and broader words (from the serving image run), with scores."""
    from marconi.db import image_words

    with read_engine().connect() as conn:
        exists, found = image_words.tags_of(conn, image_id)
    if not exists:
        raise NotFound(f"no image with id {image_id}")
    return jsonify({"image_id": image_id, "tags": [{k: t[k] for k in ("tag", "score", "direct")} for t in found],
                    "model_run": found[0]["run_id"] if found else None})


@bp.post("/api/images/tags")
@documented("tagPhoto", (ImageTags, "Tags, best first"), (400, 401, 413, 415, 429, 503), query=Region,
            form=PhotoTagsForm)
def tag_photo():
    """Tags of an uploaded photo (nothing is stored).

    Multipart field `image`, and optionally `box=x,y,w,h` (form field or query string): only that part of it, as
    the serving encoder sees it.
    """
    from marconi.image_search.text_search import photo_tags

    options = query_args(Region)
    form = form_args(PhotoTagsForm)
    photo = _searcher().query_photo(form.image.read(), _box(options, form))
    with read_engine().connect() as conn:
        snapshot = _searcher().snapshot(conn)
    return jsonify({"tags": photo_tags(snapshot.encoder, photo.frames), "model_run": snapshot.run_id,
                    "encoder": snapshot.encoder_name, "query": photo.query})


@bp.get("/api/images/<int:image_id>")
@documented("getImage", (Image, "Image"), (404,))
def metadata(image_id: int):
    """One image's metadata and links."""
    with read_engine().connect() as conn:
        row = images_db.images_by_id(conn, [image_id]).get(image_id)
    if row is None:
        raise NotFound(f"no image with id {image_id}")
    return jsonify(_links(row))


def _serve_bytes(image_id: int, thumbnail: bool) -> Response:
    """The stored bytes (or thumbnail) as a cacheable, conditional response."""
    with read_engine().connect() as conn:
        found = images_db.image_file(conn, image_id, thumbnail=thumbnail)
    if found is None:
        raise NotFound(f"no image with id {image_id}")
    data, sha256, fmt = found
    resp = Response(data, mimetype="image/jpeg" if thumbnail else MIME.get(fmt, "application/octet-stream"))
    resp.set_etag(sha256 + ("-thumb" if thumbnail else ""))
    resp.cache_control.public = True
    resp.cache_control.max_age = 31_536_000
    resp.cache_control.immutable = True
    return resp.make_conditional(request)


@bp.get("/images/<int:image_id>")
def original(image_id: int):
    """The stored image bytes (content-addressed, cached for a year)."""
    return _serve_bytes(image_id, thumbnail=False)


@bp.get("/images/<int:image_id>/thumbnail")
def thumbnail(image_id: int):
    """A JPEG thumbnail, longest side 256 px."""
    return _serve_bytes(image_id, thumbnail=True)
