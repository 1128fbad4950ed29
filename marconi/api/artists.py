"""GET /api/artists and GET /api/tags: names to start a radio from, as the user types them."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from marconi.api import read_engine
from marconi.api.models import ArtistsPage, TagsPage
from marconi.api.openapi import documented
from marconi.api.params import query_args
from marconi.db.artists import search_artists
from marconi.db.tags import search_tags

bp = Blueprint("artists", __name__)


class NamesQuery(BaseModel):
    """?q=letters&limit=10: part of an artist's or tag's name (any case or accents)."""

    model_config = ConfigDict(json_schema_extra={"example": "/api/artists?q=mad&limit=10"})

    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="part of the name, any case or accents")
    limit: int = Field(10, ge=1, le=100, description="how many names")


@bp.get("/api/artists")
@documented("searchArtists", (ArtistsPage, "Artists, exact and prefix matches first"), (400,), query=NamesQuery)
def artists():
    """Artists whose name contains q, for radio suggestions."""
    query = query_args(NamesQuery)
    with read_engine().connect() as conn:
        return jsonify({"q": query.q, "artists": search_artists(conn, query.q, query.limit)})


@bp.get("/api/tags")
@documented("searchTags", (TagsPage, "Tags, exact and prefix matches first"), (400,), query=NamesQuery)
def tags():
    """Tags whose name contains q, for radio suggestions."""
    query = query_args(NamesQuery)
    with read_engine().connect() as conn:
        return jsonify({"q": query.q, "tags": search_tags(conn, query.q, query.limit)})
