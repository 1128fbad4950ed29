"""The one way views read their input: a pydantic v2 model per request, checked here, errors in plain words.

::

    class SongsQuery(BaseModel):                     # lax: query strings are text ("5" → 5)
        model_config = ConfigDict(json_schema_extra={"example": "/api/songs?q=love&limit=20"})
        q: str = Field(min_length=1, max_length=200)
        limit: int = Field(20, ge=1, le=100)

    args = query_args(SongsQuery)                    # or json_body(RadioRequest), form_args(PhotoSearchForm)

A JSON body model sets ``model_config = ConfigDict(extra="forbid", strict=True)`` so that ``"5"`` is not a
number and unknown fields are refused. Whatever is wrong becomes ``marconi.errors.BadRequest`` whose message
names the field and the rule, e.g. ``'size' must be an integer from 1 to 200``; when the model declares an
example (``json_schema_extra={"example": ...}``) the message ends with it, so a client sees what a good request
looks like. An empty query or form value counts as not given.

Before a model sees anything, the input itself is checked, whatever the model:

- Text must be storable Unicode: strings (and keys) holding NUL characters or lone surrogates (``"\\ud800"`` is a
  legal JSON escape, but no UTF-8 text can hold it, so PostgreSQL could not be asked about it) are refused.
- A number given as text (query string, form field) for an integer field is ASCII digits only (``int("١٢")`` is 12
  in Python; here it is refused), and for a number field a plain decimal (no ``inf``, ``nan`` or ``1_000``); a
  number field given a JSON number takes finite ones only.
- A list longer than its field's ``max_length`` is refused before its items are checked one by one.
- A JSON body is at most :data:`MAX_JSON_BYTES` long and :data:`MAX_JSON_DEPTH` levels deep, and its integers have
  at most :data:`MAX_JSON_DIGITS` digits. Floats too large for a double read as infinity, and Python's ``NaN`` and
  ``Infinity`` are read too: the rule above refuses them for number fields, and a field of its own shape says so
  itself (a ``box`` must hold finite numbers).
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from typing import Any, TypeVar

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.routing import IntegerConverter

from marconi.errors import BadRequest, TooLarge

M = TypeVar("M", bound=BaseModel)
MAX_ERRORS = 3
MAX_JSON_BYTES = 1024 * 1024  # the largest request (50 seeds of 300 characters) is under 20 kB
MAX_JSON_DEPTH = 20  # levels of arrays and objects; the deepest request model needs 3
MAX_JSON_DIGITS = 100  # digits of an integer in a JSON body (every integer field is far smaller)

_ASCII_INT = re.compile(r"-?[0-9]+")
_ASCII_NUMBER = re.compile(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")


class AsciiIntConverter(IntegerConverter):
    """``<int:name>`` in a route, for ASCII digits only (werkzeug's ``\\d+`` also matches ``١٢``, which ``int``
    reads as 12); ``create_app`` installs it as the app's ``int`` converter."""

    regex = r"[0-9]+"


def json_body(model: type[M]) -> M:
    """Return the request's JSON body validated as ``model``; BadRequest when absent, not an object, or invalid."""
    body = _read_json()
    if body is None:
        raise BadRequest(_with_example(model, "send a JSON body with Content-Type: application/json"))
    if not isinstance(body, dict):
        raise BadRequest(_with_example(model, f"the JSON body must be an object, not {_json_kind(body)}"))
    return validate(model, body)


def query_args(model: type[M]) -> M:
    """Return the query string validated as ``model`` (list fields take repeated keys; empty values are unset)."""
    return validate(model, _multidict(model, request.args))


def form_args(model: type[M]) -> M:
    """Return the multipart/urlencoded form validated as ``model``: its fields, and its files (werkzeug
    ``FileStorage`` objects) for the model's file fields, e.g. ``image`` in ``marconi.api.images``."""
    return validate(model, {**_multidict(model, request.form), **_multidict(model, request.files)})


def validate(model: type[M], data: Any) -> M:
    """Return ``data`` validated as ``model``, or raise BadRequest naming each bad field and its rule."""
    _check_text(data)
    _check_lengths(model, data)
    _check_numbers(model, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(_with_example(model, describe(model, exc))) from None


def describe(model: type[BaseModel], exc: ValidationError) -> str:
    """Return a pydantic validation error as one plain sentence per problem (at most three), joined by '; '."""
    errors = exc.errors(include_url=False)
    unknown = [_loc(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
    messages = dict.fromkeys([_unknown_message(model, unknown)] if unknown else [])  # ordered, and linear to dedupe
    for err in errors:
        if err["type"] != "extra_forbidden":
            messages.setdefault(_message(model, err))
    messages = list(messages)
    more = len(messages) - MAX_ERRORS
    return "; ".join(messages[:MAX_ERRORS]) + (f" (and {more} more)" if more > 0 else "")


# ----------------------------------------------------------------------------------------------------- helpers
def example_of(model: type[BaseModel]) -> Any:
    """Return the model's declared example (``model_config["json_schema_extra"]["example"]``), or None."""
    extra = model.model_config.get("json_schema_extra")
    return extra.get("example") if isinstance(extra, dict) else None


def _with_example(model: type[BaseModel], message: str) -> str:
    example = example_of(model)
    if example is None:
        return message
    shown = example if isinstance(example, str) else json.dumps(example)
    return f"{message}; for example {shown}"


def _json_kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def _is_list_field(model: type[BaseModel], name: str) -> bool:
    info = model.model_fields.get(name)
    if info is None:
        return False
    annotation = info.annotation
    candidates = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    return any(typing.get_origin(a) in (list, tuple, set, frozenset) or a in (list, tuple, set)
               for a in (annotation, *candidates))



def _multidict(model: type[BaseModel], args) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in args:
        values = [v for v in args.getlist(key) if v != ""]
        if values:
            data[key] = values if _is_list_field(model, key) else values[0]
    return data


class _JsonNumberTooLarge(ValueError):
    """A JSON integer longer than any field takes (raised from the parser's hook, before ``int`` reads it: reading
    digits costs time quadratic in their number)."""


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_DIGITS:
        raise _JsonNumberTooLarge(f"the JSON body holds an integer of {len(text.lstrip('-')):,} digits; integers "
                                  f"are limited to {MAX_JSON_DIGITS} digits")
    return int(text)


def _read_json() -> Any:
    """The request's JSON body, parsed within bounds; None when there is none, it is not JSON, or it cannot be
    parsed. Raises BadRequest (too deep, an integer too long) or TooLarge (over MAX_JSON_BYTES)."""
    if not request.is_json:
        return None
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise TooLarge(f"a JSON body is limited to {MAX_JSON_BYTES:,} bytes")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON_BYTES:
        raise TooLarge(f"a JSON body is limited to {MAX_JSON_BYTES:,} bytes")
    try:
        body = json.loads(raw, parse_int=_json_int)  # the C parser raises RecursionError past ~1,000 levels
        too_deep = _depth_over(body, MAX_JSON_DEPTH)
    except RecursionError:
        too_deep = True
    except _JsonNumberTooLarge as exc:
        raise BadRequest(str(exc)) from None
    except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
        return None
    if too_deep:
        raise BadRequest(f"JSON nested too deeply: a request holds at most {MAX_JSON_DEPTH} levels of arrays and "
                         "objects")
    return body


def _depth_over(value: Any, limit: int) -> bool:
    """True when ``value`` nests lists and dicts more than ``limit`` levels deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _check_text(data: Any) -> None:
    """Raise BadRequest naming the first string (or key) that holds a NUL character or a lone surrogate."""
    found = _bad_text(data)
    if found is None:
        return
    where, text = found
    if "\x00" in text:
        raise BadRequest(f"'{where}' must not contain NUL characters" if where else "NUL characters are not allowed")
    char = _SURROGATE.search(text).group()
    name = f"'{where}'" if where else "the request"
    raise BadRequest(f"{name} is not valid Unicode text: it holds a lone surrogate (\\u{ord(char):04x}), which no "
                     "UTF-8 text can hold")


def _bad_text(value: Any) -> tuple[str, str] | None:
    """(where, the string) of the first string or key, depth first, holding NUL or a lone surrogate; where is ''
    for the top level (and a bad key is reported at the object holding it)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or _SURROGATE.search(item):
                return path, item
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                if isinstance(key, str) and ("\x00" in key or _SURROGATE.search(key)):
                    return path, key
                children.append((child, f"{path}.{key}" if path else str(key)))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend(reversed([(child, f"{path}[{i}]") for i, child in enumerate(item)]))
    return None


def _number_kind(annotation: Any) -> str | None:
    """'int' or 'float' for a field that holds (a list of) integers or numbers; None for anything else."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        kinds = {_number_kind(a) for a in args if a is not type(None) and a is not Ellipsis}
        return "float" if "float" in kinds else ("int" if kinds == {"int"} else None)
    if annotation is int:
        return "int"
    return "float" if annotation is float else None


def _check_lengths(model: type[BaseModel], data: Any) -> None:
    """A list longer than its field allows is refused before pydantic checks (and reports on) every item in it."""
    if not isinstance(data, dict):
        return
    for name, value in data.items():
        info = model.model_fields.get(name) if isinstance(name, str) else None
        if info is None or not isinstance(value, list | tuple):
            continue
        limit = next((m.max_length for m in info.metadata if isinstance(m, MaxLen)), None)
        if limit is not None and len(value) > limit:
            raise BadRequest(_with_example(model, _message(model, {"type": "too_long", "loc": (name,), "ctx": {}})))


def _check_numbers(model: type[BaseModel], data: Any) -> None:
    """Numbers for integer and number fields: given as text (query string, form field), ASCII only (an integer as
    digits with an optional minus, a number as a plain decimal: pydantic's lax parsing would take " 12", "1_2", "12.0",
    "inf", and ``int`` itself takes "١٢"); given as a JSON number, finite (NaN and infinity are refused)."""
    if not isinstance(data, dict):
        return
    for name, value in data.items():
        info = model.model_fields.get(name) if isinstance(name, str) else None
        kind = _number_kind(info.annotation) if info is not None else None
        if kind is None:
            continue
        pattern = _ASCII_INT if kind == "int" else _ASCII_NUMBER
        for item in value if isinstance(value, list | tuple) else [value]:
            if (isinstance(item, str) and not pattern.fullmatch(item)) or (
                    isinstance(item, float) and not math.isfinite(item)):
                err = {"type": "int_parsing" if kind == "int" else "float_parsing", "loc": (name,), "ctx": {}}
                raise BadRequest(_with_example(model, _message(model, err)))


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _bounds(model: type[BaseModel], err: dict) -> dict[str, Any]:
    """The numeric or length bounds that apply where the error happened: the field's, else the error's own."""
    ctx = dict(err.get("ctx") or {})
    loc = err["loc"]
    info = model.model_fields.get(loc[0]) if len(loc) == 1 and isinstance(loc[0], str) else None
    if info is not None:
        for meta in info.metadata:
            for cls, key in ((Ge, "ge"), (Gt, "gt"), (Le, "le"), (Lt, "lt"), (MinLen, "min_length"),
                             (MaxLen, "max_length")):
                if isinstance(meta, cls):
                    ctx[key] = getattr(meta, key)
    return ctx


def _range(b: dict) -> str:
    if "ge" in b and "le" in b:
        return f" from {b['ge']} to {b['le']}"
    parts = [f"{w} {b[k]}" for k, w in (("ge", "at least"), ("gt", "greater than"), ("le", "at most"),
                                         ("lt", "less than")) if k in b]
    return " of " + " and ".join(parts) if parts else ""


def _numeric_kind(model: type[BaseModel], err: dict) -> str:
    kind = err["type"]
    if kind.startswith("int"):
        return "an integer"
    if kind.startswith("float") or kind == "finite_number":
        return "a number"
    loc = err["loc"]
    info = model.model_fields.get(loc[0]) if len(loc) == 1 and isinstance(loc[0], str) else None
    annotation = info.annotation if info is not None else None
    types = set(typing.get_args(annotation)) | {annotation}
    return "an integer" if int in types and float not in types else "a number"


NUMERIC = {"int_type", "int_parsing", "int_from_float", "int_parsing_size", "float_type", "float_parsing",
           "finite_number", "greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of"}


def _message(model: type[BaseModel], err: dict) -> str:
    """One error as "'field' must be ..."."""
    kind, where, ctx = err["type"], _loc(err["loc"]), err.get("ctx") or {}
    name = f"'{where}'" if where else "the request"
    if kind == "missing":
        return f"{name} is required"
    if kind in NUMERIC:
        return f"{name} must be {_numeric_kind(model, err)}{_range(_bounds(model, err))}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{name} must be true or false"
    if kind == "string_type":
        return f"{name} must be a string"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return f"{name} must not be empty" if n == 1 else f"{name} must be at least {n} characters"
    if kind == "string_too_long":
        return f"{name} is limited to {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"{name} must match the pattern {ctx.get('pattern')}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"{name} must be a list"
    if kind in ("too_short", "too_long"):
        b = _bounds(model, err)
        lo, hi = b.get("min_length"), b.get("max_length")
        if lo is not None and hi is not None:
            return f"{name} must hold {lo} to {hi} items"
        return f"{name} must hold at least {lo} item(s)" if lo is not None else f"{name} must hold at most {hi} items"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{name} must be an object"
    if kind in ("literal_error", "enum"):
        return f"{name} must be {ctx.get('expected')}"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if where and msg.split(" ", 1)[0] in ("must", "is", "may", "cannot", "should"):
        return f"{name} {msg}"
    msg = msg[:1].lower() + msg[1:]
    return f"{name}: {msg}" if where else msg


def _unknown_message(model: type[BaseModel], unknown: list[str]) -> str:
    fields = [f"'{n}'" + (" (required)" if f.is_required() else "") for n, f in model.model_fields.items()]
    names = ", ".join(f"'{u}'" for u in unknown)
    return f"unknown field{'s' if len(unknown) > 1 else ''} {names}: the fields are {', '.join(fields)}"
