"""What an image-search request may hold: checked by ``marconi.api.params`` before the searcher sees it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 50
MAX_QUERY_CHARS = 200  # a text query


class JsonSearch(BaseModel):
    """JSON body of POST /api/images/search: an image's URL or words, and how many matches."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"example": {"text": "a vehicle with two wheels", "k": 10}})

    # Any: marconi.fetch.check_url says what is wrong with a bad URL, with the code bad_url, whatever its type.
    url: Any = None
    text: str | None = Field(None, max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)


class TextQuery(BaseModel):
    """Query string of GET /api/images/search: the words and how many matches."""

    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)


class MatchCount(BaseModel):
    """``k`` as a query-string or form field: how many matches to return."""

    k: int = Field(10, ge=1, le=MAX_K)
