"""The OpenAPI 3.1 description of every JSON endpoint, served at /api/openapi.json.

Kept true by tests/api/test_contract.py, which validates real responses against these schemas and fuzzes the app
with schemathesis.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from marconi import __version__
from marconi.image_search.request import BOX_PATTERN

bp = Blueprint("openapi", __name__)

NULLABLE_STR = {"type": ["string", "null"]}
ERROR = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}, "code": {"type": "string"},
                   "request_id": {"type": "string"}, "unknown": {"type": "array", "items": {"type": "string"}},
                   "closest": {"type": "array", "items": {"type": "string"},
                               "description": "unknown_artist / unknown_tag: the nearest names the model knows"},
                   "position": {"type": "integer", "minimum": 0,
                                "description": "bad_prompt: the character (from 0) where the prompt stops parsing"},
                   "formats": {"type": "array", "items": {
                       "type": "object", "required": ["format", "media_type"],
                       "properties": {"format": {"type": "string"}, "media_type": {"type": "string"}}},
                       "description": "bad_format / not_acceptable: the formats a radio comes in"}},
}
RUN = {
    "type": ["object", "null"],
    "properties": {"id": {"type": "integer"}, "kind": {"type": "string"}, "model": {"type": "string"},
                   "params": {"type": "object"}, "dims": {"type": ["integer", "null"]},
                   "n_vectors": {"type": ["integer", "null"]}, "status": {"type": "string"},
                   "started_at": NULLABLE_STR, "finished_at": NULLABLE_STR, "metrics": {"type": "object"}},
}
SONG = {"type": "object", "required": ["key", "title", "artist", "has_vector"],
        "properties": {"key": {"type": "string"}, "title": {"type": "string"}, "artist": {"type": "string"},
                       "has_vector": {"type": "boolean"}}}
TRACK_REF = {"type": "object", "required": ["key", "title", "artist"],
             "properties": {"key": {"type": "string"}, "title": {"type": "string"}, "artist": {"type": "string"}}}
PLAYLIST_ITEM = {"type": "object", "required": ["key", "title", "artist", "distance", "score", "reason",
                                               "spotify_url"],
                 "properties": {"key": {"type": "string"}, "title": {"type": "string"}, "artist": {"type": "string"},
                                "distance": {"type": "number"}, "score": {"type": "number"},
                                "reason": {**NULLABLE_STR, "description": "why the song is there, e.g. \"close to "
                                           "Halo\", \"often played with Halo\", \"by Madonna\", \"tag: rock\""},
                                "spotify_url": {**NULLABLE_STR, "description": "the song on Spotify, when its key is "
                                                "a Spotify track id"}}}
NAMED = {"type": "object", "required": ["name", "songs"],
         "properties": {"name": {"type": "string"}, "songs": {"type": "integer", "minimum": 0}}}
TAGGED = {"type": "object", "required": ["tag", "songs"],
          "properties": {"tag": {"type": "string"}, "songs": {"type": "integer", "minimum": 0}}}
KEYS = {"type": "string", "minLength": 1, "maxLength": 300}
NAMES = {"type": "array", "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 200}}
MODES = ["easy", "medium", "hard"]
PLAYLIST_FILES = {  # what POST /api/radio answers besides JSON, by ?format= or the Accept header
    "application/xspf+xml": {"schema": {"type": "string"}},
    "application/jspf+json": {"schema": {"type": "object", "required": ["playlist"]}},
    "audio/x-mpegurl": {"schema": {"type": "string"}},
}
RADIO_REQUEST = {
    "type": "object", "additionalProperties": False,
    "description": "Give at least one of `seeds`, `artists`, `tags` or `prompt` (400 otherwise).",
    "properties": {
        "seeds": {"type": "array", "maxItems": 50, "items": KEYS,
                  "description": "track keys of seed songs (GET /api/songs?q=...). Keys the catalogue does not know, "
                                 "or too rare to be in the model, are listed in `ignored_seeds` while the others "
                                 "play; when none is known the answer is 404 `unknown_seeds`."},
        "artists": {**NAMES, "description": "artist names, any case or accents (GET /api/artists?q=...); an "
                                            "unknown one is 404 `unknown_artist` with the `closest` names"},
        "tags": {**NAMES, "description": "tag names (GET /api/tags?q=...); an unknown one is 404 `unknown_tag` with "
                                         "the `closest` names"},
        "prompt": {"type": "string", "minLength": 1, "maxLength": 10_000,
                   "description": "LB Radio style, e.g. `artist:(Madonna) tag:(80s) #mode easy`; adds to `artists` "
                                  "and `tags` (at most 20 of each in all), its `#mode` wins over `mode`. One that "
                                  "does not parse is 400 `bad_prompt` with the `position` where it stops."},
        "mode": {"enum": MODES, "default": "medium",
                 "description": "easy stays close to the seeds; medium is the default radio; hard wanders (more "
                                "variety, fewer songs of the seeds' artists)"},
        "size": {"type": "integer", "minimum": 1, "maximum": 200, "default": 25},
        "max_per_artist": {"type": ["integer", "null"], "minimum": 1, "maximum": 200},
        "variety": {"type": "number", "minimum": 0, "maximum": 1, "default": 0,
                    "description": "extra variety on top of the mode: higher re-ranks the candidates by score minus "
                                   "variety x hubness, so the songs that turn up in every radio give way (0.25 to 0.5 "
                                   "suggested; docs/evaluation.md)"},
        "exclude": {"type": "array", "maxItems": 200, "items": KEYS,
                    "description": "songs (track keys) or artists (names, any case) to leave out, e.g. the songs a "
                                   "listener skipped"}}}
NAME_QUERY = [{"name": "q", "in": "query", "required": True, "description": "part of the name, any case or accents",
               "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
              {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                                          "default": 10}}]
RADIO = {
    "type": "object",
    "required": ["seeds", "ignored_seeds", "artists", "tags", "mode", "model_run", "variety", "exclude", "size",
                 "playlist"],
    "properties": {"seeds": {"type": "array", "items": TRACK_REF, "description": "the seed songs used"},
                   "ignored_seeds": {"type": "array", "items": {"type": "string"},
                                     "description": "seed keys left out: unknown, or too rare to be in the model"},
                   "artists": {"type": "array", "items": NAMED, "description": "the artists used, as the catalogue "
                                                                              "spells them"},
                   "tags": {"type": "array", "items": TAGGED, "description": "the tags used"},
                   "mode": {"enum": MODES}, "model_run": {"type": "integer"}, "variety": {"type": "number"},
                   "exclude": {"type": "array", "items": {"type": "string"}, "description": "what was left out"},
                   "size": {"type": "integer"}, "playlist": {"type": "array", "items": PLAYLIST_ITEM}}}
IMAGE = {
    "type": "object",
    "required": ["id", "label", "thumbnail_url", "image_url", "licence"],
    "properties": {"id": {"type": "integer"}, "label": NULLABLE_STR, "description": NULLABLE_STR,
                   "thumbnail_url": {"type": "string"}, "image_url": {"type": "string"}, "source_url": NULLABLE_STR,
                   "page_url": NULLABLE_STR, "wikidata_url": NULLABLE_STR, "licence": NULLABLE_STR,
                   "licence_url": NULLABLE_STR, "author": NULLABLE_STR, "attribution": NULLABLE_STR,
                   "width": {"type": "integer"}, "height": {"type": "integer"}, "animated": {"type": "boolean"},
                   "tags": {"type": "array", "items": {"type": "string"}},
                   "distance": {"type": ["number", "null"]},
                   "similarity": {"type": ["number", "null"], "minimum": 0, "maximum": 1}},
}

BOX_TEXT = ("Search only this part of the photo, to find an item inside a bigger picture: x,y,w,h in pixels of the "
            "photo as decoded (after its EXIF orientation), x,y the top-left corner; integers or decimals. A box "
            "partly outside the photo is clipped to it; one that misses the photo, or is under 16x16 pixels once "
            "clipped, is refused with code `bad_box`, as is a malformed one. The answer's `query.box` is the box used.")
BOX_STRING = {"type": "string", "pattern": BOX_PATTERN, "examples": ["40,30,200,150"]}
BOX_PARAM = {"name": "box", "in": "query", "description": BOX_TEXT, "schema": BOX_STRING}
BOX_USED = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 4, "maxItems": 4,
            "description": "The box searched, [x, y, w, h] in whole pixels, clipped to the photo"}
QUERY = {"type": "object", "properties": {
    "width": {"type": "integer"}, "height": {"type": "integer"}, "frames": {"type": "integer"},
    "box": BOX_USED, "url": {"type": "string"}, "image_id": {"type": "integer"}, "thumbnail_url": {"type": "string"},
    "text": {"type": "string"}}}

TAGS = {
    "type": "object", "required": ["tags"],
    "properties": {"tags": {"type": "array", "items": {
        "type": "object", "required": ["tag", "score", "direct"],
        "properties": {"tag": {"type": "string"}, "score": {"type": "number", "minimum": 0, "maximum": 1.0001},
                       "direct": {"type": "boolean"}}}},
        "image_id": {"type": "integer"}, "model_run": {"type": ["integer", "null"]}, "encoder": {"type": "string"},
        "query": QUERY},
}

SEARCH_RESULT = {
    "type": "object",
    "required": ["model_run", "encoder", "confidence", "confident", "message", "matches"],
    "properties": {"model_run": {"type": "integer"}, "encoder": {"type": "string"},
                   "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                   "confident": {"type": "boolean"}, "message": {"type": "string"},
                   "query": QUERY,
                   "matches": {"type": "array", "items": IMAGE}},
}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {400: "Bad request", 404: "Not found", 406: "Not acceptable: no format the Accept header allows",
            413: "Too large", 415: "Unsupported image format",
            403: "URL fetching switched off", 409: "The serving model must be retrained for this",
            422: "The URL could not be fetched", 503: "No model serving yet"}
    return {str(c): _json({"$ref": "#/components/schemas/Error"}, text[c]) for c in codes}


def spec() -> dict:
    """Return the OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Marconi", "version": __version__,
                 "description": "Song radio and reverse image search answered by PostgreSQL (cube kNN)."},
        "paths": {
            "/healthz": {"get": {"operationId": "healthz", "summary": "The process is up",
                                 "responses": {"200": _json({"type": "object", "required": ["status"],
                                                             "properties": {"status": {"const": "ok"}}}, "OK")}}},
            "/readyz": {"get": {"operationId": "readyz", "summary": "Database reachable and a model serving",
                                "responses": {
                                    "200": _json({"$ref": "#/components/schemas/Ready"}, "Ready"),
                                    "503": _json({"$ref": "#/components/schemas/Ready"}, "Not ready")}}},
            "/api/status": {"get": {
                "operationId": "status", "summary": "What is loaded and which model runs serve",
                "responses": {"200": _json({
                    "type": "object", "required": ["counts", "serving", "database_bytes"],
                    "properties": {
                        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "serving": {"type": "object", "properties": {"songs": RUN, "images": RUN}},
                        "database_bytes": {"type": "integer"}}}, "Status")}}},
            "/api/songs": {"get": {
                "operationId": "searchSongs", "summary": "Find songs by title or artist (case/accent-insensitive)",
                "parameters": [
                    {"name": "q", "in": "query", "required": True,
                     "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {"name": "offset", "in": "query",
                     "schema": {"type": "integer", "minimum": 0, "maximum": 100000}}],
                "responses": {"200": _json({
                    "type": "object", "required": ["q", "total", "limit", "offset", "next_offset", "songs"],
                    "properties": {"q": {"type": "string"}, "total": {"type": "integer"},
                                   "limit": {"type": "integer"}, "offset": {"type": "integer"},
                                   "next_offset": {"type": ["integer", "null"]},
                                   "songs": {"type": "array", "items": SONG}}}, "A page of songs"),
                              **_errors(400)}}},
            "/api/radio": {"post": {
                "operationId": "radio", "summary": "A playlist from seed songs, artists, tags or a prompt",
                "description": "JSON by default; the same radio as a playlist file (an attachment) by `?format=` or "
                               "the Accept header: XSPF (application/xspf+xml), JSPF (application/jspf+json) or "
                               "M3U8 (audio/x-mpegurl). An Accept header allowing none of these is 406.",
                "parameters": [{"name": "format", "in": "query", "description": "json, xspf, jspf or m3u8 (wins "
                                "over the Accept header); another value is 400 `bad_format`",
                                "schema": {"enum": ["json", "xspf", "jspf", "m3u8"]}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": RADIO_REQUEST}}},
                "responses": {"200": {"description": "The playlist", "content": {
                    "application/json": {"schema": RADIO}, **PLAYLIST_FILES}},
                              **_errors(400, 404, 406, 409, 503)}}},
            "/api/artists": {"get": {
                "operationId": "searchArtists", "summary": "Artists whose name contains q, for radio suggestions",
                "parameters": NAME_QUERY,
                "responses": {"200": _json({"type": "object", "required": ["q", "artists"], "properties": {
                    "q": {"type": "string"}, "artists": {"type": "array", "items": NAMED}}},
                    "Artists, exact and prefix matches first"), **_errors(400)}}},
            "/api/tags": {"get": {
                "operationId": "searchTags", "summary": "Tags whose name contains q, for radio suggestions",
                "parameters": NAME_QUERY,
                "responses": {"200": _json({"type": "object", "required": ["q", "tags"], "properties": {
                    "q": {"type": "string"}, "tags": {"type": "array", "items": TAGGED}}},
                    "Tags, exact and prefix matches first"), **_errors(400)}}},
            "/api/images/search": {"get": {
                "operationId": "searchImagesByText", "summary": "Find images by words (ranked from the pixels)",
                "description": "The words are matched against the classes each image shows (ImageNet classes and "
                               "their broader WordNet words, sentence vectors of all-MiniLM-L6-v2); stored labels "
                               "are never used. Unknown words give 200 with no matches and a message.",
                "parameters": [{"name": "q", "in": "query", "required": True,
                                "schema": {"type": "string", "minLength": 1, "maxLength": 200}},
                               {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                        "maximum": 50, "default": 10}}],
                "responses": {"200": _json(SEARCH_RESULT, "Matches"), **_errors(400, 503)}}, "post": {
                "operationId": "searchImages", "summary": "Reverse image search, or search by words",
                "description": "Upload the photo as multipart field `image`, send JSON `{\"text\": ...}` to search "
                               "by words, or JSON `{\"url\": ...}` and "
                               "the server fetches it: public http(s) addresses only (private, loopback and "
                               "link-local ones are refused, after every redirect), at most 3 redirects, "
                               "MARCONI_URL_FETCH_TIMEOUT seconds in all and MARCONI_MAX_UPLOAD_BYTES bytes. "
                               "With a photo, `box=x,y,w,h` (form field or query string; `\"box\": [x, y, w, h]` "
                               "in JSON) searches only that part of it.",
                "parameters": [BOX_PARAM],
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {
                        "type": "object", "required": ["image"],
                        "properties": {"image": {"type": "string", "format": "binary"},
                                       "k": {"type": "integer", "minimum": 1, "maximum": 50},
                                       "box": {**BOX_STRING, "description": BOX_TEXT}}}},
                    "application/json": {"schema": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"url": {"type": "string", "format": "uri", "maxLength": 2048},
                                       "text": {"type": "string", "minLength": 1, "maxLength": 200},
                                       "k": {"type": "integer", "minimum": 1, "maximum": 50},
                                       "box": {"description": BOX_TEXT + " With `url` only.", "anyOf": [
                                           {"type": "array", "items": {"type": "number"}, "minItems": 4,
                                            "maxItems": 4}, BOX_STRING]}}}}}},
                "responses": {"200": _json(SEARCH_RESULT, "Matches"),
                              **_errors(400, 403, 413, 415, 422, 503)}}},
            "/api/images/{image_id}/tags": {"get": {
                "operationId": "imageTags", "summary": "An image's tags: its classes' names and broader words",
                "parameters": [{"name": "image_id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 0, "maximum": 2**62}}],
                "responses": {"200": _json(TAGS, "Tags, best first"), **_errors(404)}}},
            "/api/images/tags": {"post": {
                "operationId": "tagPhoto", "summary": "Tags of an uploaded photo (nothing is stored)",
                "parameters": [BOX_PARAM],
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"},
                                   "box": {**BOX_STRING, "description": BOX_TEXT}}}}}},
                "responses": {"200": _json(TAGS, "Tags, best first"), **_errors(400, 413, 415, 503)}}},
            "/api/words/similar": {"get": {
                "operationId": "similarWords", "summary": "Words near a word (GloVe 6B), for search suggestions",
                "parameters": [{"name": "q", "in": "query", "required": True,
                                "schema": {"type": "string", "minLength": 1, "maxLength": 50}},
                               {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                        "maximum": 50, "default": 10}}],
                "responses": {"200": _json({"type": "object", "required": ["q", "words"], "properties": {
                    "q": {"type": "string"}, "words": {"type": "array", "items": {
                        "type": "object", "required": ["word", "similarity"],
                        "properties": {"word": {"type": "string"}, "similarity": {"type": "number"}}}}}},
                    "Nearest words"), **_errors(400, 404, 503)}}},
            "/api/images/{image_id}/similar": {"get": {
                "operationId": "similarImages", "summary": "More like this: images similar to a stored one",
                "parameters": [{"name": "image_id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 0, "maximum": 2**62}},
                               {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                        "maximum": 50, "default": 10}}],
                "responses": {"200": _json(SEARCH_RESULT, "Matches, the image itself left out"),
                              **_errors(400, 404, 503)}}},
            "/api/images/{image_id}": {"get": {
                "operationId": "getImage", "summary": "One image's metadata",
                "parameters": [{"name": "image_id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 0, "maximum": 2**62}}],
                "responses": {"200": _json(IMAGE, "Image"), **_errors(404)}}},
        },
        "components": {"schemas": {
            "Error": ERROR,
            "Ready": {"type": "object", "required": ["status"],
                      "properties": {"status": {"type": "string"}, "songs_model": {"type": ["integer", "null"]},
                                     "images_model": {"type": ["integer", "null"]}, "error": {"type": "string"}}},
        }},
    }


@bp.get("/api/openapi.json")
def openapi():
    """The OpenAPI document."""
    return jsonify(spec())


def _inline(node, components: dict):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(components[ref.rsplit("/", 1)[1]], components)
        return {k: _inline(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


def response_schema(path: str, method: str, status: int) -> dict:
    """Return the JSON schema (references inlined) of a documented response, e.g. for contract tests."""
    doc = spec()
    responses = doc["paths"][path][method.lower()]["responses"]
    entry = responses.get(str(status))
    if entry is None:
        raise KeyError(f"{method.upper()} {path} does not document status {status}")
    return _inline(entry["content"]["application/json"]["schema"], doc["components"]["schemas"])
