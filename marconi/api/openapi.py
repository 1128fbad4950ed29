"""The OpenAPI 3.1 document, generated from the code, at /api/openapi.json, and interactive docs at /api/docs.

Each API view is decorated with :func:`documented`, naming its request models (the same pydantic models the view
reads through ``marconi.api.params``) and its answers (``marconi.api.models``); spectree turns these, the route's
path and its docstring into the document. Nothing is written twice: change a model's limits and both the check and
the document change. tests/api/test_api_docs.py fails when an /api route has no models, and
tests/api/test_contract.py validates real answers against the document and fuzzes the app from it (schemathesis).

Why spectree, and why in "document only" mode. Of the three libraries tried (spectree 3.0, flask-openapi3 4.3,
flask-smorest 0.47), spectree fits this app best:

- it works on a plain ``Flask`` app and its Blueprints (it reads the app's ``url_map``); flask-openapi3 wants its
  own ``OpenAPI`` app class and ``APIBlueprint``, and injects parsed models as view arguments;
- it takes pydantic v2 models as they are; flask-smorest is built on marshmallow, so every model would be declared
  a second time as a marshmallow schema;
- it can document without validating (``skip_validation``, and a plugin whose validation step calls the view as
  it is), so ``marconi.api.params`` keeps checking input before any model sees it (NUL and lone surrogates, ASCII
  digits, JSON size, depth and digit limits, messages that name the field and show an example) and every refusal
  keeps the one error shape ``{error, status, code, request_id, ...}``. Both other libraries validate with their
  own parsers (``request.get_json``, ``json.loads`` of form values, which reads ``NaN`` and ``1e999``) and answer
  422 in their own shape before a view runs. The radio's ``?format=`` is the one documented input that a view checks
  itself (``requested_format``: any unknown value, even an empty one, is 400 ``bad_format`` listing the formats).

What spectree cannot say is added in :func:`spec` and nowhere else: the other media types of a 200 (the radio's
playlist files, by ``?format=`` or Accept) and the bounds of an ``<int:image_id>`` path parameter. The docs page is
Swagger UI from the swagger-ui-py package's own static files, served from here: no CDN.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from json import dumps as json_text
from pathlib import Path
from typing import NamedTuple

import swagger_ui
from flask import Blueprint, current_app, has_app_context, jsonify, url_for
from markupsafe import escape
from pydantic import BaseModel
from spectree import Response, SpecTree
from spectree.plugins.flask_plugin import FlaskPlugin

from marconi import __version__
from marconi.api.models import Error

SWAGGER_UI_STATIC = Path(swagger_ui.__file__).resolve().parent / "static"
bp = Blueprint("openapi", __name__, static_folder=str(SWAGGER_UI_STATIC), static_url_path="/api/docs/static")

ERROR_TEXT = {400: "Bad request", 401: "API key missing or wrong (only when the server sets MARCONI_API_KEY): send "
                                     "it as X-API-Key or Authorization: Bearer",
              403: "URL fetching switched off", 404: "Not found",
              406: "Not acceptable: no format the Accept header allows", 409: "The serving model must be retrained "
              "for this", 413: "Too large", 415: "Unsupported image format", 422: "The URL could not be fetched",
              429: "Too many uploads from this address (only when the server sets MARCONI_RATE_LIMIT_UPLOADS): "
                   "Retry-After says when to try again",
              500: "Internal error: it has been logged; report it with the request_id",
              503: "No model serving yet, or the database unavailable (Retry-After says when to try again)"}
IMAGE_ID = {"type": "integer", "minimum": 0, "maximum": 2**62, "description": "an image's id"}
PATH_PARAMETERS = {"image_id": IMAGE_ID}  # what an <int:...> converter cannot say about a path parameter


class _DocumentingFlaskPlugin(FlaskPlugin):
    """spectree's Flask plugin, documenting only: it adds no routes of its own (this module's blueprint serves the
    document and the page), validates nothing, and outside a request reads the routes of the app the blueprint was
    last registered on."""

    def register_route(self, app) -> None:
        """Add nothing: /api/openapi.json and /api/docs are this module's routes."""

    def get_current_app(self):
        """The app being served, else the one registered last."""
        return current_app if has_app_context() else self.spectree.app

    def validate(self, func, *_spectree_args, **view_args):
        """Call the view as it is: it reads its input through ``marconi.api.params``, and its answer goes out as it
        made it (spectree's hooks and response checks are not needed here)."""
        return func(**view_args)


api_doc = SpecTree(
    backend=_DocumentingFlaskPlugin, title="Marconi", version=__version__,
    description="Song radio and reverse image search answered by PostgreSQL (cube kNN). Every 4xx and 5xx answer "
                "is JSON of the `Error` shape.",
    mode="strict", annotations=False, naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    validation_error_status=500, validation_error_model=Error)  # every route may answer 500 with an Error


class RequestModel(NamedTuple):
    """A request model of an operation: where it is read from (query, json or form) and the model."""

    operation_id: str
    where: str
    model: type[BaseModel]


REQUEST_MODELS: list[RequestModel] = []  # every request model of every documented operation
_OTHER_MEDIA: dict[str, dict[str, dict]] = {}  # operation id → media type → {"schema": ...} besides JSON
_document: dict | None = None


def documented(operation_id: str, ok: tuple[type[BaseModel], str], errors: tuple[int, ...] = (), *,
               query: type[BaseModel] | None = None, json: type[BaseModel] | None = None,
               form: type[BaseModel] | None = None, also: dict[int, tuple[type[BaseModel], str]] | None = None,
               media: dict[str, dict] | None = None) -> Callable:
    """Decorate a view to document it: its request models (query string, JSON body, form fields), the model and
    words of its 200, the statuses that answer an :class:`Error`, other answers (``also``: status → (model, words))
    and other media types of the 200 (``media``: type → {"schema": ...}). The view itself validates its input
    through ``marconi.api.params`` with the same models; the summary and description are its docstring."""
    answers = {"HTTP_200": ok, **{f"HTTP_{code}": (Error, ERROR_TEXT[code]) for code in errors},
               **{f"HTTP_{code}": answer for code, answer in (also or {}).items()},
               "HTTP_500": (Error, ERROR_TEXT[500])}
    for where, model in (("query", query), ("json", json), ("form", form)):
        if model is not None:
            REQUEST_MODELS.append(RequestModel(operation_id, where, model))
    if media:
        _OTHER_MEDIA[operation_id] = media
    return api_doc.validate(query=query, json=json, form=form, resp=Response(**answers), skip_validation=True,
                            operation_id=operation_id)


def spec() -> dict:
    """Return the OpenAPI document (built once, from the routes of the app being served)."""
    global _document
    if _document is None:
        doc = copy.deepcopy(api_doc.spec)
        for path_item in doc["paths"].values():
            for operation in path_item.values():
                _finish(operation)
        for request_model in REQUEST_MODELS:  # a query or form model's example is a URL or a curl line for the
            schema = doc["components"]["schemas"].get(request_model.model.__name__, {})  # error messages,
            if not isinstance(schema.get("example"), dict):  # not an example of the object itself
                schema.pop("example", None)
        _document = doc
    return _document


def _finish(operation: dict) -> None:
    """Add what spectree cannot say (path parameters' bounds, the 200's other media types); drop empty fields and
    null defaults of parameters."""
    for parameter in operation.get("parameters", []):
        if parameter["schema"].get("default", 0) is None:  # an optional parameter is left out, never sent as null
            del parameter["schema"]["default"]
        if parameter["in"] == "path" and parameter["name"] in PATH_PARAMETERS:
            parameter["schema"] = dict(PATH_PARAMETERS[parameter["name"]])
            parameter["description"] = parameter["schema"].pop("description")
    for media_type, content in _OTHER_MEDIA.get(operation["operationId"], {}).items():
        operation["responses"]["200"]["content"][media_type] = content
    for key in ("tags", "description"):
        if not operation.get(key):
            operation.pop(key, None)


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


@bp.record_once
def _register(state) -> None:
    """Let the document be built outside a request too (from this app's routes)."""
    api_doc.register(state.app)


@bp.get("/api/openapi.json")
def openapi():
    """The OpenAPI document."""
    return jsonify(spec())


DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Marconi API</title>
  <link rel="stylesheet" href="{css}">
  <link rel="icon" type="image/png" href="{icon}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{bundle}"></script>
  <script src="{preset}"></script>
  <script src="{init}"></script>
</body>
</html>
"""


@bp.get("/api/docs")
def docs():
    """Swagger UI for the document, from the swagger-ui-py package's files (served here, no CDN)."""
    def asset(name: str) -> str:
        return escape(url_for("openapi.static", filename=name))

    return DOCS_PAGE.format(css=asset("swagger-ui.css"), icon=asset("favicon-32x32.png"),
                            bundle=asset("swagger-ui-bundle.js"), preset=asset("swagger-ui-standalone-preset.js"),
                            init=escape(url_for("openapi.docs_init")))


@bp.get("/api/docs/init.js")
def docs_init():
    """Start Swagger UI on /api/openapi.json (no online validator: the page asks nothing of other hosts)."""
    script = ("window.onload = function () {{\n"
              "  window.ui = SwaggerUIBundle({{url: {}, dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null,\n"
              "    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],\n"
              "    layout: 'StandaloneLayout'}});\n}};\n").format(json_text(url_for("openapi.openapi")))
    return current_app.response_class(script, mimetype="text/javascript")
