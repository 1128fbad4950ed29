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
from marconi.api.params import query_args, validate
from marconi.errors import BadRequest
from marconi.recommenders.prompt import MAX_PROMPT_CHARS
from marconi.recommenders.request import (
    MAX_EXCLUDE,
    MAX_NAMES,
    MAX_SEEDS,
    MAX_SIZE,
    Mode,
    RadioRequest,
)
from marconi.recommenders.song2vec import radio as make_radio
from marconi.spotify_export import SpotifySignInFailed, authorize_url, configured, require_configured, save_radio

bp = Blueprint("spotify", __name__)

COOKIE = "marconi_spotify_save"
SIGN_IN_SECONDS = 600
MAX_COOKIE_BYTES = 3800  # browsers keep cookies of up to 4096 bytes, name and attributes included


Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class SaveQuery(BaseModel):
    """The radio to save, as the radio page's own URL asks for it: ?seed=<key>&artist=<name>&tag=<tag>&exclude=…
    &prompt=…&mode=easy&size=25&max_per_artist=&variety=0 (at least one seed, artist, tag or prompt)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "example": "/radio/spotify/login?seed=yes_small:61&artist=Madonna&size=25"})

    seed: list[Key] = Field([], max_length=MAX_SEEDS)
    artist: list[Key] = Field([], max_length=MAX_NAMES)
    tag: list[Key] = Field([], max_length=MAX_NAMES)
    exclude: list[Key] = Field([], max_length=MAX_EXCLUDE)
    prompt: str | None = Field(None, min_length=1, max_length=MAX_PROMPT_CHARS)
    mode: Mode | None = None
    size: int = Field(25, ge=1, le=MAX_SIZE)
    max_per_artist: int | None = Field(None, ge=1, le=MAX_SIZE)
    variety: float = Field(0.0, ge=0, le=1)

    def radio_request(self) -> RadioRequest:
        """The same radio as the API's request (which refuses one with nothing to start from)."""
        asked = {"seeds": tuple(self.seed), "artists": tuple(self.artist), "tags": tuple(self.tag),
                 "exclude": tuple(self.exclude), "prompt": self.prompt, "mode": self.mode, "size": self.size,
                 "max_per_artist": self.max_per_artist, "variety": self.variety}
        return validate(RadioRequest, {k: v for k, v in asked.items() if v is not None})


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
    req = query_args(SaveQuery).radio_request()
    _radio(req)  # unknown seeds or no model: say so now, not after the listener has signed in
    nonce = secrets.token_urlsafe(24)
    value = _signer().dumps({"nonce": nonce, "radio": req.model_dump(mode="json")})
    if len(value) > MAX_COOKIE_BYTES:
        raise BadRequest("this radio asks for too much (seeds, names or skipped songs) to carry through Spotify's "
                         "sign-in: save a radio with fewer", code="too_many_seeds")
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
    args = {"seed": list(req.seeds), "artist": list(req.artists), "tag": list(req.tags), "exclude": list(req.exclude),
            "prompt": req.prompt, "size": req.size, "max_per_artist": req.max_per_artist,
            "variety": f"{req.variety:g}" if req.variety else None,
            "mode": req.mode if req.mode != RadioRequest.model_fields["mode"].default else None}
    return url_for("web.radio", **{k: v for k, v in args.items() if v not in (None, [])})
