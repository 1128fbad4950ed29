"""POST /api/radio: a playlist from seed songs."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from marconi.api.errors import ApiError
from marconi.radio import RadioError, make_radio, parse_request

bp = Blueprint("radio", __name__)


@bp.post("/api/radio")
def radio():
    """Body {"seeds": [track keys], "size": 25, "max_per_artist": null} → ordered playlist."""
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError("send a JSON body with Content-Type: application/json, e.g. "
                       "{\"seeds\": [\"yes_small:0\"], \"size\": 25}", 400)
    try:
        req = parse_request(body)
        with current_app.extensions["marconi.engine"].connect() as conn:
            cfg = current_app.config["MARCONI"]
            result = make_radio(conn, req, cfg.ann, cfg.hnsw_ef_search)
    except RadioError as exc:
        raise ApiError(str(exc), exc.status, **exc.details) from None
    return jsonify(result)
