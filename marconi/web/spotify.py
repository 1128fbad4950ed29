"""The "Save to Spotify" pages: /radio/spotify/login sends the listener to Spotify, /radio/spotify/callback saves.

The radio asked for travels in a signed, HttpOnly cookie (signed with the Spotify client secret, valid
:data:`SIGN_IN_SECONDS`), and the ``state`` sent to Spotify is a random nonce that cookie also holds: a callback
from another browser, an old sign-in or a forged one is refused. The callback makes the radio again from the
cookie's request and saves it (``marconi.spotify_export``), then shows what was saved with a link; a client that
asks for JSON gets the same as JSON. Without the Spotify settings both answer 503 naming them.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from flask import Blueprint, jsonify, make_response, redirect, render_template, request, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from marconi.api import config, engine
from marconi.api.params import query_args
from marconi.errors import BadRequest
from marconi.recommenders.request import MAX_SEEDS, MAX_SIZE, RadioRequest
from marconi.recommenders.song2vec import radio as make_radio
from marconi.spotify_export import SpotifySignInFailed, authorize_url, configured, require_configured, save_radio

bp = Blueprint("spotify", __name__)

COOKIE = "marconi_spotify_save"
SIGN_IN_SECONDS = 600
MAX_COOKIE_BYTES = 3800  # browsers keep cookies of up to 4096 bytes, name and attributes included


class SaveQuery(BaseModel):
    """?seed=<key>&seed=...&size=25&max_per_artist=&variety=0: the radio to save (the radio page's own URL)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "example": "/radio/spotify/login?seed=yes_small:61&size=25"})

    seed: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]] = Field(
        min_length=1, max_length=MAX_SEEDS)
    size: int = Field(25, ge=1, le=MAX_SIZE)
    max_per_artist: int | None = Field(None, ge=1, le=MAX_SIZE)
    variety: float = Field(0.0, ge=0, le=1)


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(config().spotify_client_secret, salt="marconi.spotify.save")


@bp.app_context_processor
def _save_link():
    """``spotify_login_url`` for templates: the save page's address when Spotify is set up, else None."""
    return {"spotify_login_url": url_for("web.spotify.login") if configured(config()) else None}


def _radio(req: RadioRequest) -> dict:
    cfg = config()
    with engine().connect() as conn:
        return make_radio(conn, req, cfg.ann, cfg.hnsw_ef_search)


@bp.get("/radio/spotify/login")
def login():
    """Check the radio can be made, remember it in a signed cookie, and send the listener to Spotify to sign in."""
    cfg = config()
    require_configured(cfg)
    query = query_args(SaveQuery)
    req = RadioRequest(seeds=tuple(query.seed), size=query.size, max_per_artist=query.max_per_artist,
                       variety=query.variety)
    _radio(req)  # unknown seeds or no model: say so now, not after the listener has signed in
    nonce = secrets.token_urlsafe(24)
    value = _signer().dumps({"nonce": nonce, "radio": req.model_dump(mode="json")})
    if len(value) > MAX_COOKIE_BYTES:
        raise BadRequest("these seed songs are too many (or their keys too long) to carry through Spotify's sign-in: "
                         "save a radio with fewer seeds", code="too_many_seeds")
    response = redirect(authorize_url(cfg, nonce))
    response.set_cookie(COOKIE, value, max_age=SIGN_IN_SECONDS, path=url_for("web.spotify.login").rsplit("/", 1)[0],
                        secure=request.is_secure, httponly=True, samesite="Lax")
    return response


def _pending_radio(state: str) -> RadioRequest:
    """The radio the sign-in that came back with ``state`` was started for; SpotifySignInFailed if none."""
    again = "start again from the radio page"
    try:
        data = _signer().loads(request.cookies.get(COOKIE, ""), max_age=SIGN_IN_SECONDS)
    except SignatureExpired:
        raise SpotifySignInFailed(f"this Spotify sign-in took longer than {SIGN_IN_SECONDS // 60} minutes: "
                                  f"{again}") from None
    except BadSignature:
        raise SpotifySignInFailed(f"this Spotify sign-in was not started from this browser (or has been used): "
                                  f"{again}") from None
    if not isinstance(data, dict) or not hmac.compare_digest(str(data.get("nonce", "")), state or ""):
        raise SpotifySignInFailed(f"this Spotify sign-in does not match the one this browser started: {again}")
    return RadioRequest.model_validate(data["radio"])


@bp.get("/radio/spotify/callback")
def callback():
    """Where Spotify sends the listener back: save the remembered radio as a private playlist and say what was saved."""
    cfg = config()
    require_configured(cfg)
    error, code, state = (request.args.get(k, "") for k in ("error", "code", "state"))
    if error:
        reason = "you did not allow it" if error == "access_denied" else f"Spotify said {error[:80]!r}"
        raise SpotifySignInFailed(f"nothing was saved to Spotify: {reason}. Start again from the radio page "
                                  "when you want to")
    req = _pending_radio(state)
    answer = {**_radio(req), "max_per_artist": req.max_per_artist}
    result = save_radio(cfg, code, answer)
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
        response = jsonify(result)
    else:
        response = make_response(render_template("spotify_saved.html", page="radio", result=result,
                                                 radio_url=_radio_page(req)))
    response.delete_cookie(COOKIE, path=url_for("web.spotify.login").rsplit("/", 1)[0])
    return response


def _radio_page(req: RadioRequest) -> str:
    """The radio page showing ``req`` again."""
    args = {"seed": list(req.seeds), "size": req.size}
    if req.max_per_artist:
        args["max_per_artist"] = req.max_per_artist
    if req.variety:
        args["variety"] = f"{req.variety:g}"
    return url_for("web.radio", **args)
