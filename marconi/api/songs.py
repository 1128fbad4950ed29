"""GET /api/songs: find tracks by title or artist, to pick radio seeds."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from marconi.api.errors import ApiError
from marconi.db.songs import search_songs

bp = Blueprint("songs", __name__)


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    """Parse an integer query parameter within [lo, hi] or raise a 400 ApiError."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"'{name}' must be an integer", 400) from None
    if not lo <= value <= hi:
        raise ApiError(f"'{name}' must be between {lo} and {hi}", 400)
    return value


@bp.get("/api/songs")
def songs():
    """Search songs: ?q=words&limit=20&offset=0."""
    q = (request.args.get("q") or "").strip()
    if not q:
        raise ApiError("give a search term: /api/songs?q=title or artist words", 400)
    if "\x00" in q:
        raise ApiError("'q' must not contain NUL characters", 400)
    if len(q) > 200:
        raise ApiError("'q' is limited to 200 characters", 400)
    limit = int_arg("limit", 20, 1, 100)
    offset = int_arg("offset", 0, 0, 100_000)
    with current_app.extensions["marconi.engine"].connect() as conn:
        total, items = search_songs(conn, q, limit, offset)
    nxt = offset + limit if offset + limit < total else None
    return jsonify({"q": q, "total": total, "limit": limit, "offset": offset, "next_offset": nxt, "songs": items})
