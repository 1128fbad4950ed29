"""GET /api/songs: find tracks by title or artist, to pick radio seeds."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from marconi.api import read_engine
from marconi.api.models import SongsPage
from marconi.api.openapi import documented
from marconi.api.params import query_args
from marconi.db.songs import search_songs

bp = Blueprint("songs", __name__)


class SongsQuery(BaseModel):
    """?q=words&limit=20&offset=0: words of the title or artist, and the page."""

    model_config = ConfigDict(json_schema_extra={"example": "/api/songs?q=love&limit=20"})

    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="words of the title or the artist, any case or accents")
    limit: int = Field(20, ge=1, le=100, description="songs per page")
    offset: int = Field(0, ge=0, le=100_000, description="songs to skip: the previous answer's next_offset")


def songs_page(conn: sa.Connection, query: SongsQuery) -> dict:
    """Return one page of songs matching ``query``, with the total and the next page's offset (None at the end)."""
    total, items = search_songs(conn, query.q, query.limit, query.offset)
    end = query.offset + query.limit
    return {"q": query.q, "total": total, "limit": query.limit, "offset": query.offset,
            "next_offset": end if end < total else None, "songs": items}


@bp.get("/api/songs")
@documented("searchSongs", (SongsPage, "A page of songs"), (400,), query=SongsQuery)
def songs():
    """Find songs by title or artist (case/accent-insensitive)."""
    query = query_args(SongsQuery)
    with read_engine().connect() as conn:
        return jsonify(songs_page(conn, query))

