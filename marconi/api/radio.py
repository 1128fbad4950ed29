"""POST /api/radio: a playlist from seed songs, as JSON or as a playlist file (XSPF, JSPF, M3U8).

The format is chosen by ``?format=json|xspf|jspf|m3u8`` when given, else by the Accept header (no Accept header,
or ``*/*``, is JSON). A format this endpoint cannot give is a 406 listing the formats; an unknown ``format=`` is a
400. Playlist files come as attachments with a filename from the first seed (``marconi-radio-halo-beyonce.xspf``).
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel

from marconi.api import read_engine
from marconi.api.models import Radio, optional
from marconi.api.openapi import documented
from marconi.api.params import json_body
from marconi.db import one_statement
from marconi.errors import BadRequest, MarconiError
from marconi.playlist_formats import FORMATS, filename
from marconi.recommenders.request import RadioRequest
from marconi.recommenders.song2vec import radio as make_radio

bp = Blueprint("radio", __name__)

JSON = "application/json"
# media type → format name; the first type of each format is the one answered, the others are accepted aliases
MEDIA_TYPES = {JSON: "json", **{f.media_type: name for name, f in FORMATS.items()}, "audio/mpegurl": "m3u8"}
FORMAT_NAMES = ("json", *FORMATS)
# the playlist files a 200 may be besides JSON (the OpenAPI document lists them)
PLAYLIST_FILES = {f.media_type: {"schema": {"type": "object", "required": ["playlist"]} if f.media_type.endswith("json")
                                 else {"type": "string"}} for f in FORMATS.values()}


class RadioFormat(BaseModel):
    """``?format=``: the answer's format. Read by :func:`requested_format`, not by ``params``: any value it does not
    know, even an empty one, is a 400 ``bad_format`` that lists the formats."""

    format: Literal[FORMAT_NAMES] = optional(description="json, xspf, jspf or m3u8 (wins over the Accept header); "
                                                         "another value is 400 `bad_format`")


class NotAcceptable(MarconiError):
    """The Accept header names no format this endpoint can answer in."""

    status = 406
    code = "not_acceptable"


def formats_offered() -> list[dict]:
    """The formats a radio comes in: ``[{"format": "xspf", "media_type": "application/xspf+xml"}, ...]``."""
    return [{"format": "json", "media_type": JSON}] + [{"format": name, "media_type": f.media_type}
                                                         for name, f in FORMATS.items()]


def requested_format() -> str:
    """The format to answer in: ``?format=`` first, else the Accept header; BadRequest / NotAcceptable when none."""
    given = request.args.get("format")
    if given is not None:
        name = given.strip().lower()
        if name not in FORMAT_NAMES:
            raise BadRequest(f"unknown format {given[:40]!r}: use one of {', '.join(FORMAT_NAMES)}",
                             code="bad_format", formats=formats_offered())
        return name
    accept = request.accept_mimetypes
    if not accept:  # no Accept header (or an empty one): anything goes, JSON it is
        return "json"
    best = accept.best_match(list(MEDIA_TYPES))
    if best is None:
        wanted = request.headers.get("Accept", "")[:200]
        raise NotAcceptable(f"cannot answer in {wanted!r}: a radio comes as "
                            + ", ".join(f"{f['media_type']} (format={f['format']})" for f in formats_offered()),
                            formats=formats_offered())
    return MEDIA_TYPES[best]


@bp.post("/api/radio")
@documented("radio", (Radio, "The playlist"), (400, 404, 406, 409, 503), query=RadioFormat, json=RadioRequest,
            media=PLAYLIST_FILES)
def radio():
    """A playlist from seed songs, artists, tags or a prompt.

    JSON by default; the same radio as a playlist file (an attachment) by `?format=` or the Accept header: XSPF
    (application/xspf+xml), JSPF (application/jspf+json) or M3U8 (audio/x-mpegurl). An Accept header allowing none
    of these is 406.
    """
    fmt = requested_format()
    req = json_body(RadioRequest)
    config = current_app.config["MARCONI"]
    with read_engine().connect() as conn, one_statement(conn):  # no BEGIN, no ROLLBACK: one statement
        answer = make_radio(conn, req, config.ann, config.hnsw_ef_search)
    if fmt == "json":
        response = jsonify(answer)
    else:
        export = FORMATS[fmt]
        body = export.write({**answer, "max_per_artist": req.max_per_artist}, request.host_url)
        response = Response(body, content_type=f"{export.media_type}; charset=utf-8")
        response.headers.set("Content-Disposition", "attachment", filename=filename(answer, export.extension))
    response.vary.add("Accept")
    return response
