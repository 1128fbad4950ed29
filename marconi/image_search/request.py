"""What an image-search request may hold: checked by ``marconi.api.params`` before the searcher sees it."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from marconi.errors import BadRequest

MAX_K = 50
MAX_QUERY_CHARS = 200  # a text query
BOX_HELP = ("'box' must be four numbers x,y,w,h: the left and top edges, width and height in pixels of the photo as "
            "decoded (after its EXIF orientation), e.g. box=40,30,200,150 or \"box\": [40, 30, 200, 150]")
_NUMBER = r"[ \t]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t]*"  # ASCII digits only
_NOT_FINITE = ("nan", "inf", "infinity")  # numbers to Python, refused as such rather than as text
BOX_PATTERN = rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$"  # a box as text; the OpenAPI document shows it too


class BadBox(BadRequest):
    """A ``box`` that cannot be used (malformed, or not over enough of the photo)."""

    code = "bad_box"


def parse_box(value: Any) -> tuple[float, float, float, float] | None:
    """Return ``x,y,w,h`` (a string, or a list of four numbers) as four floats; BadBox saying what is wrong.

    Raised from a pydantic validator, BadBox is not a ValueError, so it passes through validation as it is and the
    client gets the code ``bad_box`` rather than the generic ``bad_request``. Whether the box lies on the photo is
    only known once it is decoded: ``marconi.image_search.region.clip_box`` checks that.
    """
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split(",")
        if not re.fullmatch(BOX_PATTERN, value) and not (len(parts) == 4 and all(
                re.fullmatch(_NUMBER, p) or p.strip().lower().lstrip("+-") in _NOT_FINITE for p in parts)):
            raise BadBox(f"{BOX_HELP}; got {value[:60]!r}")
        numbers = [float(p) for p in parts]
    elif isinstance(value, list | tuple):
        if len(value) != 4 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise BadBox(f"{BOX_HELP}; got a list of {len(value)} item(s)" if len(value) != 4 else
                         f"{BOX_HELP}; every item must be a number")
        numbers = [float(v) for v in value]
    else:
        raise BadBox(BOX_HELP)
    if not all(math.isfinite(v) for v in numbers):
        raise BadBox("'box' must hold finite numbers (no NaN or infinity)")
    x, y, w, h = numbers
    if w <= 0 or h <= 0:
        raise BadBox(f"'box' must have a positive width and height; got {w:g}x{h:g}")
    return x, y, w, h


BOX_TEXT = ("Search only this part of the photo, to find an item inside a bigger picture: x,y,w,h in pixels of the "
            "photo as decoded (after its EXIF orientation), x,y the top-left corner; integers or decimals. A box "
            "partly outside the photo is clipped to it; one that misses the photo, or is under 16x16 pixels once "
            "clipped, is refused with code `bad_box`, as is a malformed one. The answer's `query.box` is the box used.")
BOX_STRING = {"type": "string", "pattern": BOX_PATTERN, "examples": ["40,30,200,150"], "description": BOX_TEXT}
# x, y, w, h as floats (None when not given): as text in a query string or form, as text or a list in JSON
Box = Annotated[Any, BeforeValidator(parse_box), WithJsonSchema(BOX_STRING)]
JsonBox = Annotated[Any, BeforeValidator(parse_box), WithJsonSchema({
    "description": BOX_TEXT + " With `url` only.",
    "anyOf": [{"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}, BOX_STRING]})]


class JsonSearch(BaseModel):
    """JSON body of POST /api/images/search: an image's URL or words, and how many matches."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"example": {"text": "a vehicle with two wheels", "k": 10}})

    # Any: marconi.url_rules.check_url says what is wrong with a bad URL, with the code bad_url, whatever its type.
    url: Annotated[Any, WithJsonSchema({"type": "string", "format": "uri", "maxLength": 2048})] = Field(
        None, description="an image for the server to fetch: public http(s) addresses only (private, loopback and "
                          "link-local ones are refused, after every redirect), at most 3 redirects, "
                          "MARCONI_URL_FETCH_TIMEOUT seconds in all and MARCONI_MAX_UPLOAD_BYTES bytes")
    text: str | None = Field(None, min_length=1, max_length=MAX_QUERY_CHARS, description="words to search by")
    k: int = Field(10, ge=1, le=MAX_K, description="how many matches")
    box: JsonBox = None  # with "url": search only this part of the photo


class Region(BaseModel):
    """``box=x,y,w,h`` as a query-string or form field: search (or tag) only this part of the photo."""

    model_config = ConfigDict(json_schema_extra={"example": "box=40,30,200,150"})

    box: Box = None


class TextQuery(BaseModel):
    """Query string of GET /api/images/search: the words and how many matches."""

    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="the words, e.g. a vehicle with two wheels")
    k: int = Field(10, ge=1, le=MAX_K, description="how many matches")


class MatchCount(BaseModel):
    """``k`` as a query-string or form field: how many matches to return."""

    k: int = Field(10, ge=1, le=MAX_K, description="how many matches")
