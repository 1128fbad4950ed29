"""What an image-search request may hold: checked by ``marconi.api.params`` before the searcher sees it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 50


class UrlSearch(BaseModel):
    """JSON body of POST /api/images/search: the image's URL and how many matches."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"example": {"url": "https://example.org/cat.jpg", "k": 10}})

    # Any: marconi.fetch.check_url says what is wrong with a bad URL, with the code bad_url, whatever its type.
    url: Any
    k: int = Field(10, ge=1, le=MAX_K)


class MatchCount(BaseModel):
    """``k`` as a query-string or form field: how many matches to return."""

    k: int = Field(10, ge=1, le=MAX_K)
