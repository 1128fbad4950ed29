"""Save a radio to a listener's Spotify account: spotipy's OAuth authorization-code flow, then a private playlist.

No Flask here: ``marconi.web.spotify`` runs the sign-in pages and calls :func:`authorize_url` and
:func:`save_radio`. Spotify's accounts and Web API URLs come from the settings (``MARCONI_SPOTIFY_AUTH_URL``,
``_TOKEN_URL``, ``_API_URL``), so tests point them at a fake Spotify on 127.0.0.1, as the scrapers do.

Songs become Spotify URIs this way: a key that is a Spotify track (``spotify:track:<id>``) directly; any other by a
Spotify search for ``track:<title> artist:<artist>`` (feature notes such as "(w/ Drake)" left out of the title),
taking the first hit. Every song is resolved before the playlist is created, so a failed search leaves nothing
half-made on the account.

Calls go through one requests session: a deadline per call (``MARCONI_SPOTIFY_TIMEOUT``), an identifying
User-Agent, and GETs retried twice on 429 and 5xx, honouring ``Retry-After`` up to :data:`MAX_RETRY_AFTER` seconds.
Writes (the token exchange, creating the playlist, adding songs) are never retried, so a retry cannot create a
second playlist. What Spotify refuses becomes a :class:`SpotifyError` (or :class:`SpotifyRateLimited`) with a
message for the listener; nothing from Spotify reaches the user as a 500.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
import spotipy
from requests.adapters import HTTPAdapter
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.exceptions import SpotifyException, SpotifyOauthError
from spotipy.oauth2 import SpotifyOAuth
from urllib3.util.retry import Retry

from marconi import __version__
from marconi.config import Config
from marconi.errors import BadRequest, MarconiError, Unavailable
from marconi.playlist_formats import playlist_annotation, playlist_title, spotify_uri

log = logging.getLogger(__name__)

SCOPE = "playlist-modify-private"  # create a private playlist and add songs to it; nothing else
SETTINGS_NEEDED = ("MARCONI_SPOTIFY_CLIENT_ID", "MARCONI_SPOTIFY_CLIENT_SECRET", "MARCONI_SPOTIFY_REDIRECT_URI")
USER_AGENT = f"Marconi/{__version__} (save a radio to Spotify)"
MAX_RETRY_AFTER = 2.0  # seconds; a longer Retry-After is not waited for inside a page request
ADD_BATCH = 100  # Spotify adds at most 100 items per request
SEARCH_WORKERS = 4
DESCRIPTION_MAX = 300  # Spotify's limit on a playlist description
_FEATURE_NOTE = re.compile(r"\s*[(\[](?:w/|with |feat\.?|ft\.?|featuring )[^)\]]*[)\]]", re.IGNORECASE)


class SpotifyNotConfigured(Unavailable):
    """This Marconi has no Spotify app credentials, so it cannot save to Spotify."""

    code = "spotify_not_configured"


class SpotifySignInFailed(BadRequest):
    """The listener's Spotify sign-in did not complete (cancelled, expired, or used twice)."""

    code = "spotify_sign_in"


class SpotifyError(MarconiError):
    """Spotify refused or failed a call; the message says what the listener or the operator can do."""

    status = 502
    code = "spotify_error"


class SpotifyRateLimited(Unavailable):
    """Spotify asked Marconi to slow down (HTTP 429)."""

    code = "spotify_rate_limited"


@dataclass(frozen=True)
class Resolved:
    """A playlist song and its Spotify URI (None when Spotify has no match); ``how`` is 'key', 'search' or None."""

    item: dict
    uri: str | None
    how: str | None


# ------------------------------------------------------------------------------------------------ settings
def configured(config: Config) -> bool:
    """True when the Spotify client id, secret and redirect URI are all set."""
    return bool(config.spotify_client_id and config.spotify_client_secret and config.spotify_redirect_uri)


def require_configured(config: Config) -> None:
    """Raise SpotifyNotConfigured naming the settings to set, unless all of them are."""
    if not configured(config):
        missing = [var for var, value in zip(SETTINGS_NEEDED, (config.spotify_client_id, config.spotify_client_secret,
                                                               config.spotify_redirect_uri), strict=True) if not value]
        raise SpotifyNotConfigured("saving to Spotify is not set up on this server: set " + ", ".join(missing)
                                   + " (a Spotify app's credentials and its redirect URI, "
                                   "https://developer.spotify.com/dashboard)", missing=missing)


# ------------------------------------------------------------------------------------------ HTTP and spotipy
class _BoundedRetry(Retry):
    """urllib3's Retry, waiting at most MAX_RETRY_AFTER for a ``Retry-After`` (a page request must not hang)."""

    def get_retry_after(self, response):
        """The server's Retry-After in seconds, capped."""
        after = super().get_retry_after(response)
        return None if after is None else min(after, MAX_RETRY_AFTER)


def make_session() -> requests.Session:
    """The HTTP session for Spotify calls: User-Agent, and GETs retried twice on 429/5xx."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    retry = _BoundedRetry(total=2, connect=2, read=0, status=2, backoff_factor=0.2, backoff_max=MAX_RETRY_AFTER,
                          allowed_methods=frozenset({"GET"}), status_forcelist=(429, 500, 502, 503, 504),
                          respect_retry_after_header=True, raise_on_status=False)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _OAuth(SpotifyOAuth):
    """spotipy's authorization-code flow with the authorize and token URLs from the settings; never prompts."""

    def __init__(self, config: Config, session: requests.Session):
        """The flow for this server's Spotify app; tokens live in memory for one request only."""
        super().__init__(client_id=config.spotify_client_id, client_secret=config.spotify_client_secret,
                         redirect_uri=config.spotify_redirect_uri, scope=SCOPE, requests_session=session,
                         requests_timeout=config.spotify_timeout, open_browser=False,
                         cache_handler=MemoryCacheHandler())
        self.OAUTH_AUTHORIZE_URL = config.spotify_auth_url
        self.OAUTH_TOKEN_URL = config.spotify_token_url

    def get_auth_response(self, *args, **kwargs):
        """Never ask on a terminal: a server has none (spotipy would when a code is missing)."""
        raise SpotifySignInFailed("Spotify sent no authorization code: start again from the radio page")


def authorize_url(config: Config, state: str) -> str:
    """The Spotify page where the listener allows Marconi to create a private playlist, carrying ``state``."""
    require_configured(config)
    return _OAuth(config, make_session()).get_authorize_url(state=state)


def exchange_code(config: Config, code: str, session: requests.Session) -> str:
    """The access token for an authorization code; SpotifySignInFailed / SpotifyError when Spotify refuses it."""
    if not code:
        raise SpotifySignInFailed("Spotify sent no authorization code: start again from the radio page")
    try:
        return _OAuth(config, session).get_access_token(code, as_dict=False, check_cache=False)
    except SpotifyOauthError as exc:
        if exc.error == "invalid_grant":
            raise SpotifySignInFailed("this Spotify sign-in has expired or was already used: start again from the "
                                      "radio page") from None
        if exc.error in ("invalid_client", "unauthorized_client"):
            raise SpotifyError("Spotify refused this server's app credentials: check MARCONI_SPOTIFY_CLIENT_ID, "
                               "MARCONI_SPOTIFY_CLIENT_SECRET and that MARCONI_SPOTIFY_REDIRECT_URI is registered "
                               "for the app") from None
        raise SpotifyError(f"Spotify did not complete the sign-in ({_short(exc.error or str(exc))}): try again")\
            from None
    except requests.RequestException as exc:
        raise _unreachable(exc) from None


def client(config: Config, token: str, session: requests.Session) -> spotipy.Spotify:
    """spotipy on ``session`` with the listener's access token and the configured Web API base URL."""
    sp = spotipy.Spotify(auth=token, requests_session=session, requests_timeout=config.spotify_timeout,
                         retries=0, status_retries=0, backoff_factor=0)
    sp.prefix = config.spotify_api_url.rstrip("/") + "/"
    return sp


def _short(text: str) -> str:
    return " ".join(str(text).split())[:200]


def _unreachable(exc: Exception) -> SpotifyError:
    return SpotifyError(f"could not reach Spotify ({type(exc).__name__}): try again in a minute",
                        code="spotify_unreachable")


def spotify_failure(exc: SpotifyException, doing: str) -> MarconiError:
    """The error to show for a refused Web API call made while ``doing`` something (e.g. 'creating the playlist')."""
    status = exc.http_status
    if status == 429:
        return SpotifyRateLimited(f"Spotify is limiting requests from this server while {doing}: try again in a "
                                  "minute")
    if status == 401:
        return SpotifyError(f"Spotify did not accept the sign-in while {doing} (HTTP 401): start again from the "
                            "radio page", code="spotify_unauthorized")
    if status == 403:
        return SpotifyError(f"Spotify refused {doing} (HTTP 403). While this server's Spotify app is in development "
                            "mode, only the Spotify users added to it in the developer dashboard may use it",
                            code="spotify_forbidden")
    if status is not None and status >= 500:
        return SpotifyError(f"Spotify failed while {doing} (HTTP {status}): try again later")
    return SpotifyError(f"Spotify refused {doing} (HTTP {status}: {_short(exc.msg)})")


def _call(doing: str, method, *args, **kwargs):
    """``method(*args, **kwargs)`` with Spotify's refusals and network failures turned into Marconi errors."""
    try:
        result = method(*args, **kwargs)
    except SpotifyException as exc:
        log.warning("Spotify refused %s: HTTP %s %s", doing, exc.http_status, _short(exc.msg))
        raise spotify_failure(exc, doing) from None
    except requests.RequestException as exc:
        raise _unreachable(exc) from None
    return result


# ----------------------------------------------------------------------------------------------- the saving
def search_query(title: str, artist: str) -> str:
    """Spotify's search query for a song: ``track:<title> artist:<artist>``, feature notes left out of the title."""
    title = " ".join(_FEATURE_NOTE.sub("", title or "").split()) or (title or "").strip()
    artist = " ".join((artist or "").split())
    return f"track:{title} artist:{artist}" if artist else f"track:{title}"


def _first_track_uri(page) -> str | None:
    """The URI of the first track of a search answer, or None."""
    tracks = page.get("tracks") if isinstance(page, dict) else None
    items = tracks.get("items") if isinstance(tracks, dict) else None
    first = next((t for t in items if isinstance(t, dict)), None) if isinstance(items, list) else None
    uri = first.get("uri") if first else None
    return uri if isinstance(uri, str) and uri.startswith("spotify:track:") else None


def resolve(sp: spotipy.Spotify, items: list[dict]) -> list[Resolved]:
    """Each song with its Spotify URI: Spotify keys directly, the others by search (first hit), in order."""
    def one(item: dict) -> Resolved:
        uri = spotify_uri(item["key"])
        if uri:
            return Resolved(item, uri, "key")
        page = _call("searching for songs", sp.search, q=search_query(item.get("title", ""), item.get("artist", "")),
                     type="track", limit=1)
        uri = _first_track_uri(page)
        return Resolved(item, uri, "search" if uri else None)

    with ThreadPoolExecutor(SEARCH_WORKERS) as pool:
        return list(pool.map(one, items))


def save_radio(config: Config, code: str, answer: dict) -> dict:
    """Exchange ``code`` for a token and save the radio ``answer`` as a private playlist of the listener.

    Returns ``{"playlist": {id, name, url, uri}, "user": name, "found": n, "total": n, "missing": [songs],
    "songs": [{key, title, artist, uri, how}]}``.
    """
    require_configured(config)
    session = make_session()
    sp = client(config, exchange_code(config, code, session), session)
    user = _call("reading your Spotify profile", sp.current_user) or {}
    resolved = resolve(sp, answer.get("playlist", []))
    uris = [r.uri for r in resolved if r.uri]
    if not uris:
        raise SpotifyError("Spotify has none of these songs, so no playlist was created", code="spotify_no_matches",
                           status=422)
    name = playlist_title(answer)
    created = _call("creating the playlist", sp.current_user_playlist_create, name, public=False,
                    description=playlist_annotation(answer)[:DESCRIPTION_MAX])
    if not isinstance(created, dict) or not created.get("id"):
        raise SpotifyError("Spotify answered the playlist creation with something Marconi cannot read")
    try:
        for start in range(0, len(uris), ADD_BATCH):
            _call("adding songs to the playlist", sp.playlist_add_items, created["id"], uris[start:start + ADD_BATCH])
    except MarconiError as exc:
        exc.message += f" (the playlist “{name}” was created on your account, with {start} of {len(uris)} songs)"
        raise
    url = (created.get("external_urls") or {}).get("spotify") or f"https://open.spotify.com/playlist/{created['id']}"
    return {"playlist": {"id": created["id"], "name": created.get("name") or name, "url": url,
                         "uri": created.get("uri")},
            "user": user.get("display_name") or user.get("id"), "found": len(uris), "total": len(resolved),
            "missing": [{"key": r.item["key"], "title": r.item.get("title"), "artist": r.item.get("artist")}
                        for r in resolved if not r.uri],
            "songs": [{"key": r.item["key"], "title": r.item.get("title"), "artist": r.item.get("artist"),
                       "uri": r.uri, "how": r.how} for r in resolved]}
