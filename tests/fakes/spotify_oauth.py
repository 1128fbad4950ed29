"""A fake Spotify for "Save to Spotify": the accounts service (authorize, token) and the Web API calls it makes.

A real threaded HTTP/1.1 server on 127.0.0.1, so spotipy's OAuth flow, its requests and Marconi's retries run for
real. Search answers are recorded track objects (``fixtures/spotify-web-api-responses``, read at start-up, see
PROVENANCE.md) with the name, artist and id rewritten to match the query; a created playlist is the recorded
GetPlaylistRequest body with its fields rewritten. No recording exists of the accounts service, of GET /v1/me or
of the answer to adding items: those bodies are the minimal shapes Spotify documents (developer.spotify.com, Web
API reference and Authorization Code flow), and each spot below says so.

Listeners sign in automatically (``deny`` makes them refuse). ``unknown_titles`` are searches with no hit;
``fail(path, status)`` makes the next calls to a path fail (429 with ``Retry-After``, 401, 403, 5xx).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from .server import derived_id

CLIENT_ID = "fake-save-client-id"
CLIENT_SECRET = "fake-save-client-secret"
USER = {"id": "marconi-listener", "display_name": "Marconi Listener"}


@dataclass
class _Failure:
    path: str
    status: int
    times: int
    retry_after: str | None = None


@dataclass
class Saved:
    """A playlist created on the fake account."""

    id: str
    name: str
    public: bool
    description: str
    uris: list = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802
        self._handle()

    def do_POST(self):  # noqa: N802
        self._handle()

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8", headers)

    def _error(self, status: int, message: str, headers: dict | None = None):
        # Spotify's documented Web API error object (the recordings hold only a legacy 404 body).
        self._json(status, {"error": {"status": status, "message": message}}, headers)

    def _handle(self):
        fake = self.server.fake
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        fake.log(self.command, parts.path, query, body)
        failure = fake.take_failure(parts.path)
        if failure is not None:
            headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else None
            return self._error(failure.status, "injected fault", headers)
        if parts.path == "/authorize":
            return self._authorize(query)
        if parts.path == "/api/token":
            return self._token({k: v[-1] for k, v in parse_qs(body).items()})
        if parts.path.startswith("/v1/"):
            return self._api(parts.path[3:].rstrip("/"), query, body)  # spotipy asks for /v1/me/
        self._error(404, "no such fake route")

    # -- accounts
    def _authorize(self, q: dict):
        fake = self.server.fake
        if q.get("client_id") != CLIENT_ID or q.get("redirect_uri") != fake.redirect_uri:
            # Spotify shows an HTML error page here and does not redirect (documented: INVALID_CLIENT).
            return self._send(400, b"<html><body>INVALID_CLIENT: Invalid redirect URI</body></html>",
                              "text/html; charset=utf-8")
        fake.authorize_params.append(q)
        state = {"state": q["state"]} if "state" in q else {}
        if fake.deny or q.get("response_type") != "code":
            target = {"error": "access_denied" if fake.deny else "unsupported_response_type", **state}
        else:
            target = {"code": fake.new_code(q.get("scope", "")), **state}
        self._send(302, b"", "text/plain", {"Location": f"{fake.redirect_uri}?{urlencode(target)}"})

    def _token(self, form: dict):
        fake = self.server.fake
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        # Error and token bodies: Spotify's documented Authorization Code flow shapes (no recording exists).
        if self.headers.get("Authorization") != expected:
            return self._json(400, {"error": "invalid_client", "error_description": "Invalid client secret"})
        if form.get("grant_type") != "authorization_code" or form.get("redirect_uri") != fake.redirect_uri:
            return self._json(400, {"error": "invalid_request", "error_description": "Invalid redirect URI"})
        scope = fake.redeem(form.get("code", ""))
        if scope is None:
            return self._json(400, {"error": "invalid_grant", "error_description": "Invalid authorization code"})
        self._json(200, {"access_token": fake.new_token(), "token_type": "Bearer", "scope": scope,
                         "expires_in": 3600, "refresh_token": "fake-refresh-" + fake.new_token()})

    # -- Web API
    def _api(self, path: str, q: dict, body: str):
        fake = self.server.fake
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in fake.tokens:
            return self._error(401, "Invalid access token")
        if path == "/me" and self.command == "GET":
            # Spotify's documented current-user profile (no recording): the fields Marconi reads and a few more.
            return self._json(200, {**USER, "type": "user", "uri": f"spotify:user:{USER['id']}",
                                    "href": f"{fake.url}/v1/users/{USER['id']}", "followers": {"href": None,
                                    "total": 0}, "external_urls": {"spotify": "https://open.spotify.com/user/"
                                                                   + USER["id"]}})
        if path == "/search" and self.command == "GET":
            return self._json(200, {"tracks": fake.search(q.get("q", ""), int(q.get("limit", 20)))})
        if path == "/me/playlists" and self.command == "POST":
            data = json.loads(body or "{}")
            return self._json(201, fake.create_playlist(data))
        m = re.fullmatch(r"/playlists/([0-9A-Za-z]+)/(items|tracks)", path)
        if m and self.command == "POST":
            data = json.loads(body or "[]")
            uris = data.get("uris", []) if isinstance(data, dict) else data
            if m.group(1) not in fake.saved:
                return self._error(404, "Resource not found")
            if len(uris) > 100 or not all(isinstance(u, str) and u.startswith("spotify:track:") for u in uris):
                return self._error(400, "Invalid track uri or more than 100 items")
            fake.saved[m.group(1)].uris.extend(uris)
            # Documented answer to adding items: a snapshot id (no recording).
            return self._json(201, {"snapshot_id": base64.b64encode(f"{m.group(1)}:{len(uris)}".encode()).decode()})
        self._error(404, "Service not found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeSpotifyAccounts


class FakeSpotifyAccounts:
    """The fake accounts service and Web API on one local port (a context manager)."""

    def __init__(self, data_dir: Path, redirect_uri: str = "http://localhost/radio/spotify/callback"):
        """Load the recorded track and playlist bodies under ``data_dir``/fixtures."""
        root = Path(data_dir) / "fixtures" / "spotify-web-api-responses" / "spotify-web-api-java"
        self.track_template = json.loads((root / "SearchTracksRequest.json").read_text())["tracks"]["items"][0]
        playlist = json.loads((root / "GetPlaylistRequest.json").read_text())
        self.playlist_template = {k: v for k, v in playlist.items() if k != "tracks"}
        self.redirect_uri = redirect_uri
        self.deny = False
        self.unknown_titles: set[str] = set()
        self.saved: dict[str, Saved] = {}
        self.tokens: set[str] = set()
        self.authorize_params: list[dict] = []
        self.requests: list[tuple[str, str, dict, str]] = []
        self._codes: dict[str, str] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._httpd: _Server | None = None

    # -- lifecycle
    def __enter__(self) -> FakeSpotifyAccounts:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        threading.Thread(target=self._httpd.serve_forever, name="fake-spotify-accounts", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def settings(self) -> dict:
        """Marconi settings (``create_app`` overrides) pointing "Save to Spotify" at this fake."""
        return {"spotify_client_id": CLIENT_ID, "spotify_client_secret": CLIENT_SECRET,
                "spotify_redirect_uri": self.redirect_uri, "spotify_auth_url": self.url + "/authorize",
                "spotify_token_url": self.url + "/api/token", "spotify_api_url": self.url + "/v1/",
                "spotify_timeout": 5.0}

    def reset(self) -> None:
        """Forget saved playlists, failures, the request log and the deny switch."""
        with self._lock:
            self.saved.clear()
            self._failures.clear()
            self.requests.clear()
            self.authorize_params.clear()
            self.unknown_titles.clear()
            self.deny = False

    # -- state
    def log(self, method: str, path: str, query: dict, body: str) -> None:
        """Record a request."""
        with self._lock:
            self.requests.append((method, path, query, body))

    def hits(self, method: str, pattern: str) -> list[tuple[str, str, dict, str]]:
        """Logged requests of ``method`` whose path matches ``pattern``."""
        with self._lock:
            return [r for r in self.requests if r[0] == method and re.search(pattern, r[1])]

    def fail(self, path: str, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests whose path matches the regex ``path`` with ``status``."""
        with self._lock:
            self._failures.append(_Failure(path, status, times, retry_after))

    def take_failure(self, path: str) -> _Failure | None:
        """The first programmed failure for ``path`` with uses left (one use taken)."""
        with self._lock:
            for f in self._failures:
                if f.times > 0 and re.search(f.path, path):
                    f.times -= 1
                    return f
        return None

    def new_code(self, scope: str) -> str:
        """Issue an authorization code for ``scope``."""
        code = f"fake-code-{next(self._numbers)}"
        with self._lock:
            self._codes[code] = scope
        return code

    def redeem(self, code: str) -> str | None:
        """The scope of ``code``, used up; None for an unknown or used code."""
        with self._lock:
            return self._codes.pop(code, None)

    def new_token(self) -> str:
        """Issue an access token."""
        token = f"fake-user-token-{next(self._numbers)}"
        with self._lock:
            self.tokens.add(token)
        return token

    def search(self, query: str, limit: int) -> dict:
        """A track search paging object: one track named as the query asks, unless its title is unknown."""
        m = re.fullmatch(r"track:(.*?)(?: artist:(.*))?", query)
        title, artist = (m.group(1), m.group(2) or "") if m else (query, "")
        items = []
        if title not in self.unknown_titles:
            track = copy.deepcopy(self.track_template)
            tid = derived_id(track["id"], int(hashlib.sha256(query.encode()).hexdigest()[:8], 16) % 10_000 + 1)
            track.update(id=tid, name=title, uri=f"spotify:track:{tid}", href=f"{self.url}/v1/tracks/{tid}",
                         external_urls={"spotify": f"https://open.spotify.com/track/{tid}"})
            track["artists"] = [dict(track["artists"][0], name=artist)]
            items = [track][:limit]
        return {"href": f"{self.url}/v1/search?{urlencode({'query': query, 'type': 'track'})}", "items": items,
                "limit": limit, "next": None, "offset": 0, "previous": None, "total": len(items)}

    def create_playlist(self, data: dict) -> dict:
        """Create a playlist for the listener; its body is the recorded playlist, rewritten."""
        pid = derived_id(self.playlist_template["id"], next(self._numbers))
        saved = Saved(pid, data.get("name", ""), bool(data.get("public", True)), data.get("description", ""))
        with self._lock:
            self.saved[pid] = saved
        body = copy.deepcopy(self.playlist_template)
        body.update(id=pid, name=saved.name, public=saved.public, description=saved.description, collaborative=False,
                    uri=f"spotify:playlist:{pid}", href=f"{self.url}/v1/playlists/{pid}",
                    external_urls={"spotify": f"https://open.spotify.com/playlist/{pid}"},
                    owner=dict(body.get("owner") or {}, id=USER["id"], display_name=USER["display_name"],
                               uri=f"spotify:user:{USER['id']}", href=f"{self.url}/v1/users/{USER['id']}",
                               external_urls={"spotify": f"https://open.spotify.com/user/{USER['id']}"}),
                    tracks={"href": f"{self.url}/v1/playlists/{pid}/tracks", "total": 0})
        return body
