"""POST /api/radio: a playlist from seed songs."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from marconi.api.params import json_body
from marconi.recommenders.request import RadioRequest
from marconi.recommenders.song2vec import radio as make_radio

bp = Blueprint("radio", __name__)


@bp.post("/api/radio")
def radio():
    """Body {"seeds": [track keys], "size": 25, "max_per_artist": null, "variety": 0} → ordered playlist."""
    req = json_body(RadioRequest)
    config = current_app.config["MARCONI"]
    with current_app.extensions["marconi.engine"].connect() as conn:
        return jsonify(make_radio(conn, req, config.ann, config.hnsw_ef_search))
