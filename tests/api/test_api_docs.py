"""The OpenAPI document comes from the code: every /api route is in it with its models, the request models' limits
are in it, its examples fit its schemas, and /api/docs shows it with Swagger UI served from here (no CDN)."""

import re
import types
import typing
from html.parser import HTMLParser
from urllib.parse import urlsplit

import jsonschema
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import StringConstraints

from marconi.api.openapi import REQUEST_MODELS

NOT_OPERATIONS = ("openapi.",)  # the document and the docs page themselves
JSON_ROUTES = ("/healthz", "/readyz")  # JSON endpoints outside /api/


class _Assets(HTMLParser):
    """Every src and href of a page."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def _inline(node, components):
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(components[node["$ref"].rsplit("/", 1)[1]], components)
        return {k: _inline(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


def _operations(doc):
    return {(path, method.upper()): op for path, item in doc["paths"].items() for method, op in item.items()}


def test_docs_page_loads_from_this_server_only(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "//" not in html  # no http(s)://, no protocol-relative //cdn...
    parser = _Assets()
    parser.feed(html)
    scripts = [u for u in parser.urls if u.endswith(".js")]
    assert len(scripts) >= 3 and any(u.endswith(".css") for u in parser.urls)
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), f"{url} is not same-origin"
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.get_data()) > 0, url
    bundle = client.get(next(u for u in scripts if "swagger-ui-bundle" in u)).get_data(as_text=True)
    assert "SwaggerUIBundle" in bundle and len(bundle) > 100_000  # the real Swagger UI, not a stub
    init = client.get(next(u for u in scripts if "init" in u)).get_data(as_text=True)
    assert '"/api/openapi.json"' in init


def test_every_api_route_is_documented(app, client):
    """A new /api route without ``documented(...)`` fails here; so does a documented operation that is not served."""
    doc = client.get("/api/openapi.json").get_json()
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(NOT_OPERATIONS) or not (
                rule.rule.startswith("/api/") or rule.rule in JSON_ROUTES):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        served |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = set(_operations(doc))
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
    assert len(served) >= 14


def test_every_operation_documents_its_answers(client):
    """A JSON 200 from a model, every 4xx/5xx the Error shape (readyz's 503 is its own), operation ids unique."""
    doc = client.get("/api/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    ids = [op["operationId"] for op in _operations(doc).values()]
    assert len(ids) == len(set(ids))
    for (path, method), op in _operations(doc).items():
        assert op["summary"] and op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        for code, answer in op["responses"].items():
            if int(code) >= 400 and path != "/readyz":
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (
                    path, method, code)
    error = schemas["Error"]
    assert set(error["required"]) == {"error", "status"} and {"code", "request_id"} <= set(error["properties"])


def test_the_radio_documents_its_playlist_files(client):
    content = client.get("/api/openapi.json").get_json()["paths"]["/api/radio"]["post"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "application/xspf+xml", "application/jspf+json", "audio/x-mpegurl"}


def test_protected_routes_document_their_refusals(client):
    """The routes ``marconi.protections`` guards say they may answer 401 (API key) and 429 (rate limit)."""
    from marconi.protections import EXPENSIVE_ROUTES

    operations = _operations(client.get("/api/openapi.json").get_json())
    for method, path in EXPENSIVE_ROUTES:
        assert {"401", "429"} <= set(operations[(path, method)]["responses"]), (method, path)


def test_photo_uploads_are_multipart_with_a_binary_image(client):
    doc = client.get("/api/openapi.json").get_json()
    for path in ("/api/images/search", "/api/images/tags"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]
        form = _inline(body["multipart/form-data"]["schema"], doc["components"]["schemas"])
        assert "image" in form["required"] and form["properties"]["image"]["format"] == "binary"
        assert form["properties"]["box"]["pattern"]
    assert "application/json" in doc["paths"]["/api/images/search"]["post"]["requestBody"]["content"]


def _expected_limits(info) -> dict:
    """The JSON-schema keywords a field's own constraints should produce, read from its pydantic metadata."""
    annotation = info.annotation
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    candidates = [a for a in typing.get_args(annotation) if a is not type(None)] if union else [annotation]
    is_list = any(typing.get_origin(a) in (list, tuple) for a in candidates)
    out = {}
    for meta in info.metadata:
        if isinstance(meta, StringConstraints):
            meta = [MinLen(meta.min_length) if meta.min_length is not None else None,
                    MaxLen(meta.max_length) if meta.max_length is not None else None]
        for m in meta if isinstance(meta, list) else [meta]:
            if isinstance(m, Ge):
                out["minimum"] = m.ge
            elif isinstance(m, Le):
                out["maximum"] = m.le
            elif isinstance(m, Gt):
                out["exclusiveMinimum"] = m.gt
            elif isinstance(m, Lt):
                out["exclusiveMaximum"] = m.lt
            elif isinstance(m, MinLen):
                out["minItems" if is_list else "minLength"] = m.min_length
            elif isinstance(m, MaxLen):
                out["maxItems" if is_list else "maxLength"] = m.max_length
    return out


def _field_schema(doc, op, where, name):
    schemas = doc["components"]["schemas"]
    if where == "query":
        schema = next(p["schema"] for p in op["parameters"] if p["in"] == "query" and p["name"] == name)
    else:
        media = "application/json" if where == "json" else "multipart/form-data"
        schema = _inline(op["requestBody"]["content"][media]["schema"], schemas)["properties"][name]
    branches = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    return {k: v for s in branches for k, v in s.items()}


def test_request_models_limits_are_in_the_document(client):
    """Each request model's bounds (ge/le, lengths, list sizes) appear where the operation documents the field."""
    doc = client.get("/api/openapi.json").get_json()
    by_id = {op["operationId"]: op for op in _operations(doc).values()}
    checked = 0
    for operation_id, where, model in REQUEST_MODELS:
        for name, info in model.model_fields.items():
            schema = _field_schema(doc, by_id[operation_id], where, info.alias or name)
            for keyword, value in _expected_limits(info).items():
                assert schema.get(keyword) == value, f"{operation_id} {where} {name}: {keyword} {value} not documented"
                checked += 1
    assert checked >= 30
    radio = _field_schema(doc, by_id["radio"], "json", "seeds")
    assert radio["maxItems"] == 50 and radio["items"]["maxLength"] == 300  # an item's own limits too


def test_examples_fit_their_schemas(client):
    doc = client.get("/api/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    found = 0
    for schema in schemas.values():
        examples = schema.get("examples", []) + ([schema["example"]] if "example" in schema else [])
        for example in examples:
            jsonschema.validate(example, _inline(schema, schemas))
            found += 1
    assert found >= 5
