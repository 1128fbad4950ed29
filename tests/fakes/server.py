"""A local fake of the Spotify Web API, the Wikidata SPARQL endpoint and Wikimedia Commons, on 127.0.0.1:<port>.

It is a real threaded HTTP/1.1 server, so the scrapers' requests session, timeouts and retries are exercised for
real. Every body it serves is built from recorded real responses in ``<data_dir>/fixtures`` (see each folder's
PROVENANCE.md), read at start-up and never copied into the repository. Where a recording lacks something the
scrapers need, the reply is derived from recorded bodies and a comment at that spot says how.

Faults are programmable per path (:meth:`FakeServer.add_fault`): HTTP status (429 with Retry-After, 500, 503, 403,
...), a slow answer past the client's timeout, malformed JSON, a connection reset (socket closed without a
response), an expired token (401, then the client must fetch a new one), a MediaWiki maxlag error; plus missing
Commons files, broken downloads, and 404/403 playlists. ``delay`` slows every answer (used to land a kill mid-run).
"""

from __future__ import annotations

import base64
import copy
import csv
import hashlib
import io
import itertools
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from PIL import Image

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_WORD = re.compile(r"\w+")


def _h(*parts) -> int:
    """A stable hash of the parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def derived_id(original: str, copy_no: int) -> str:
    """A deterministic 22-character base62 Spotify-style id for copy ``copy_no`` of a recorded id (0 = itself)."""
    if copy_no == 0:
        return original
    n = int.from_bytes(hashlib.sha256(f"{original}:{copy_no}".encode()).digest(), "big")
    out = []
    for _ in range(22):
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(out)


def _load(path: Path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@dataclass
class Fault:
    """One programmed fault: applies to requests whose path matches ``path`` (a regex), ``times`` times."""

    path: str
    kind: str  # status | slow | malformed | reset | expire_token | maxlag
    times: int = 1
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    hits: int = 0


@dataclass
class Logged:
    """A request as the fake saw it."""

    method: str
    path: str
    params: dict
    headers: dict
    status: int | None = None


# --------------------------------------------------------------------------------------------------- Spotify
class SpotifyData:
    """Playlists and tracks built from the recorded Spotify response bodies."""

    PLAYLIST_SOURCES = [
        ("spotify-web-api-js/search_playlist.json", ("playlists", "items")),
        ("spotify-web-api-java/SearchPlaylistsRequest.json", ("playlists", "items")),
        ("spotify-web-api-js/user_playlists.json", ("items",)),
        ("spotify-web-api-java/GetListOfUsersPlaylistsRequest.json", ("items",)),
        ("spotify-web-api-js/category_playlists.json", ("playlists", "items")),
        ("spotify-web-api-js/featured_playlists.json", ("playlists", "items")),
        ("spotify-web-api-java/GetCategorysPlaylistsRequest.json", ("playlists", "items")),
    ]
    TRACK_SOURCES = [
        ("spotify-web-api-js/playlist.json", ("tracks", "items"), "track"),
        ("spotify-web-api-java/GetPlaylistRequest.json", ("tracks", "items"), "track"),
        ("spotify-web-api-java/GetPlaylistsItemsRequest.json", ("items",), "track"),
        ("spotify-web-api-js/playlist_tracks.json", ("items",), "track"),
        ("spotify-web-api-js/search_track.json", ("tracks", "items"), None),
        ("spotify-web-api-java/SearchTracksRequest.json", ("tracks", "items"), None),
        ("spotify-web-api-js/search.json", ("tracks", "items"), None),
        ("spotify-web-api-js/tracks.json", ("tracks",), None),
        ("spotify-web-api-java/GetSeveralTracksRequest.json", ("tracks",), None),
    ]

    def __init__(self, root: Path, copies: int = 4, per_word: int = 40, min_tracks: int = 6, max_tracks: int = 25):
        """Load the recordings under ``root`` (the spotify-web-api-responses folder)."""
        self.per_word = per_word
        self.min_tracks, self.max_tracks = min_tracks, max_tracks
        pool: dict[str, dict] = {}
        for rel, keys in self.PLAYLIST_SOURCES:
            node = _load(root / rel)
            for k in keys:
                node = node[k]
            for item in node:
                if item and item.get("id"):
                    pool.setdefault(item["id"], item)
        # Search results for any word are drawn from `copies` copies of the recorded playlists: copy 0 keeps the
        # recorded id, copy k gets a deterministic derived id (the recorded body with the id rewritten everywhere).
        self.playlists: dict[str, dict] = {}
        for k in range(copies):
            for pid, item in pool.items():
                new_id = derived_id(pid, k)
                self.playlists[new_id] = json.loads(json.dumps(item).replace(pid, new_id))
        tracks: dict[str, dict] = {}
        for rel, keys, inner in self.TRACK_SOURCES:
            node = _load(root / rel)
            for k in keys:
                node = node[k]
            for item in node:
                t = item.get(inner) if inner and isinstance(item, dict) else item
                if isinstance(t, dict) and t.get("id"):
                    tracks.setdefault(t["id"], t)
        self.tracks = list(tracks.values())
        items = _load(root / "spotify-web-api-java/GetPlaylistsItemsRequest.json")["items"]
        self.item_template = {k: v for k, v in items[0].items() if k != "track"}  # added_at, added_by, is_local...
        self.null_item = items[1]  # a recorded item whose track is null (removed from the catalogue)
        self.not_found_body = _load(root / "spotify-web-api-js/error_id_not_found.json")

    def search(self, word: str) -> list[dict]:
        """All results for ``word``: titles containing it first, then the rest, in a word-dependent stable order."""
        word = word.casefold()

        def rank(pid):
            return (word not in _WORD.findall((self.playlists[pid].get("name") or "").casefold()), _h(word, pid))

        return [self.playlists[pid] for pid in sorted(self.playlists, key=rank)[: self.per_word]]

    def playlist_items(self, pid: str) -> list[dict]:
        """The items of playlist ``pid``: a window of the recorded tracks, with null and local-file items mixed in."""
        h = _h("items", pid)
        n = self.min_tracks + h % (self.max_tracks - self.min_tracks + 1)
        start = h % len(self.tracks)
        out = []
        for i in range(n):
            item = dict(self.item_template)
            item["track"] = self.tracks[(start + i) % len(self.tracks)]
            out.append(item)
        if h % 3 == 0:
            out.insert(2, self.null_item)
        if h % 4 == 1:
            # No recording shows a local file. Spotify documents them as items with is_local true whose track has
            # id null and a 'spotify:local:…' URI; derive one from a recorded track that way.
            src = self.tracks[(start + n) % len(self.tracks)]
            local = copy.deepcopy(src)
            artist = (src.get("artists") or [{}])[0].get("name", "")
            uri = f"spotify:local:{quote(artist)}::{quote(src.get('name', ''))}:{src['duration_ms'] // 1000}"
            local.update(id=None, is_local=True, href=None, external_urls={}, available_markets=[], uri=uri)
            item = dict(self.item_template, is_local=True, track=local)
            out.insert(min(4, len(out)), item)
        return out


def paging(href: str, items: list, offset: int, limit: int, total: int, base_params: dict) -> dict:
    """A Spotify paging object (href, items, limit, next, offset, previous, total) with links back to the fake."""
    def link(off):
        return f"{href}?{urlencode({**base_params, 'offset': off, 'limit': limit})}"

    return {"href": link(offset), "items": items, "limit": limit,
            "next": link(offset + limit) if offset + limit < total else None, "offset": offset,
            "previous": link(max(0, offset - limit)) if offset > 0 else None, "total": total}


# ----------------------------------------------------------------------------------------- Wikidata + Commons
class WikimediaData:
    """SPARQL rows and Commons files built from the recorded Wikidata and Commons responses."""

    ENTITY_FILES = ("Q571.json", "Q2112.json", "Q217447.json", "Q271094.json")
    IMAGEINFO_VARIANTS = ("imageInfo.json", "imageInfoWithoutArtist.json", "imageInfoWithoutAttribution.json",
                          "imageInfoWithoutNormalization.json")

    def __init__(self, fixtures: Path, images: Path, n_classes: int = 40):
        """Load the recordings (``fixtures``) and the photos served as file contents (``images``)."""
        rows = []
        # 1. Recorded Wikidata entities that have an image (P18), English label, description and enwiki article.
        for name in self.ENTITY_FILES:
            e = _load(fixtures / "wikidata-api-responses" / name)
            image = e["claims"]["P18"][0]["mainsnak"]["datavalue"]["value"]
            title = e["sitelinks"]["enwiki"]["title"]
            rows.append((e["id"], e["labels"]["en"]["value"], e["descriptions"]["en"]["value"],
                         "https://en.wikipedia.org/wiki/" + quote(title.replace(" ", "_")), image))
        # 2. No recording holds the scraper's exact query result (PROVENANCE says so). More rows come from the
        #    recorded paintings SPARQL result: a real item and its real P18 file, labelled with the recorded English
        #    label/description of its Iconclass class (classes.csv); they have no Wikipedia article.
        saints = fixtures / "wikidata-paintings-saints-sparql"
        with open(saints / "classes.csv", encoding="utf-8") as fh:
            labels = {r["ID"]: (r["Label"], r["Description"]) for r in csv.DictReader(fh)}
        with open(saints / "paintings.csv", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if r["iconclass"] not in labels:
                    continue
                label, description = labels[r["iconclass"]]
                file_name = unquote(r["image"].rsplit("/", 1)[-1])
                rows.append((r["painting"].rsplit("/", 1)[-1], label, description, None, file_name))
                if len(rows) >= n_classes:
                    break
        self.rows = sorted(rows[:n_classes], key=lambda r: "http://www.wikidata.org/entity/" + r[0])
        self.files = {r[4]: i for i, r in enumerate(self.rows)}  # file name → index
        self.photos = sorted(p for p in images.rglob("*.jpg"))
        self.imageinfo_pages = []
        for name in self.IMAGEINFO_VARIANTS:
            q = _load(fixtures / "commons-api-responses" / "wmde-attribution-generator-api" / name)
            self.imageinfo_pages.append(next(iter(q["pages"].values())))

    def bindings(self) -> list[dict]:
        """The rows as SPARQL JSON bindings (ORDER BY ?class)."""
        out = []
        for qid, label, description, article, image in self.rows:
            b = {"class": {"type": "uri", "value": "http://www.wikidata.org/entity/" + qid},
                 "label": {"xml:lang": "en", "type": "literal", "value": label},
                 "description": {"xml:lang": "en", "type": "literal", "value": description},
                 "image": {"type": "uri",
                           "value": "http://commons.wikimedia.org/wiki/Special:FilePath/" + quote(image)}}
            if article:
                b["article"] = {"type": "uri", "value": article}
            out.append(b)
        return out

    def photo(self, file_name: str) -> bytes | None:
        """The bytes served for a Commons file: a distinct real photo per file."""
        i = self.files.get(file_name)
        return None if i is None else self.photos[i % len(self.photos)].read_bytes()

    def imageinfo_page(self, file_name: str, base: str, width: int) -> dict:
        """An imageinfo page for ``file_name``: a recorded page with title, URLs and sizes rewritten."""
        i = self.files[file_name]
        page = copy.deepcopy(self.imageinfo_pages[i % len(self.imageinfo_pages)])
        data = self.photo(file_name)
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
        under = file_name.replace(" ", "_")
        md5 = hashlib.md5(under.encode()).hexdigest()
        q = quote(under)
        page["title"] = "File:" + file_name
        info = page["imageinfo"][0]
        info.update(
            url=f"{base}/upload/wikipedia/commons/{md5[0]}/{md5[:2]}/{q}",
            thumburl=f"{base}/upload/wikipedia/commons/thumb/{md5[0]}/{md5[:2]}/{q}/{width}px-{q}",
            thumbwidth=min(w, width), thumbheight=h if w <= width else round(h * width / w),
            width=w, height=h, size=len(data), mime="image/jpeg",
            descriptionurl="https://commons.wikimedia.org/wiki/File:" + q)
        return page


# ------------------------------------------------------------------------------------------------- the server
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args):  # keep test output clean
        pass

    def _params(self) -> dict:
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            params.update({k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()})
        return params

    def do_GET(self):  # noqa: N802
        self._handle()

    def do_POST(self):  # noqa: N802
        self._handle()

    def _send(self, status: int, body: bytes, ctype: str = "application/json; charset=utf-8", headers=None):
        self._logged.status = status
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout); nothing to do
            self.close_connection = True

    def _json(self, status: int, obj, headers=None, ctype="application/json; charset=utf-8"):
        self._send(status, json.dumps(obj).encode(), ctype, headers)

    def _reset(self):
        """Close the socket without answering (RST): the client sees a connection reset."""
        self._logged.status = None
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _handle(self):
        srv = self.server.fake
        path = urlsplit(self.path).path
        params = self._params()
        self._logged = Logged(self.command, path, params, dict(self.headers))
        srv.log(self._logged)
        if srv.delay:
            time.sleep(srv.delay)
        fault = srv.take_fault(path)
        if fault is not None:
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                # Spotify's documented error object; MediaWiki/WDQS send HTML or text here, which no client parses.
                return self._json(fault.status, {"error": {"status": fault.status, "message": "injected fault"}},
                                  headers)
            elif fault.kind == "malformed":
                return self._send(200, b'{"playlists": {"items": [{"id": "4vHIKV7j4Q', "application/json")
            elif fault.kind == "reset":
                return self._reset()
            elif fault.kind == "expire_token":
                srv.tokens.clear()
            elif fault.kind == "maxlag":
                # Shape from mediawiki.org Manual:Maxlag_parameter (HTTP 200, error code maxlag, Retry-After,
                # X-Database-Lag and MediaWiki-API-Error headers); no recording exists.
                return self._json(200, {"error": {"code": "maxlag", "info": "Waiting for 10.64.48.35: 6 seconds "
                                                  "lagged.", "host": "10.64.48.35", "lag": 6,
                                                  "*": "See https://commons.wikimedia.org/w/api.php for API usage."}},
                                  {"Retry-After": fault.retry_after or "0", "X-Database-Lag": "6",
                                   "MediaWiki-API-Error": "maxlag"})
        try:
            if path.startswith("/spotify/"):
                return self._spotify(path[len("/spotify"):], params)
            if path == "/wikidata/sparql":
                return self._sparql(params)
            if path == "/commons/w/api.php":
                return self._commons_api(params)
            if path.startswith("/upload/"):
                return self._upload(path)
        except Exception as exc:  # a bug in the fake must be visible, not a hang
            return self._json(500, {"error": {"status": 500, "message": f"fake server error: {exc!r}"}})
        self._json(404, {"error": {"status": 404, "message": "no such fake route"}})

    # -- Spotify
    def _spotify(self, path: str, params: dict):
        srv = self.server.fake
        if path == "/api/token":
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if self.headers.get("Authorization") != expected or params.get("grant_type") != "client_credentials":
                # Spotify's documented OAuth error shape; no recorded token response exists.
                return self._json(400, {"error": "invalid_client", "error_description": "Invalid client"})
            token = srv.new_token()
            # Spotify's documented client-credentials response (no recording of the token endpoint exists).
            return self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in srv.tokens:
            # Spotify's documented 401 body for an expired token (the recordings have no 401).
            return self._json(401, {"error": {"status": 401, "message": "The access token expired"}})
        data = srv.spotify
        base = srv.url + "/spotify/v1"
        offset, limit = int(params.get("offset", 0)), int(params.get("limit", 20))
        if path == "/v1/search":
            word = params.get("q", "")
            results = data.search(word)
            page_items = results[offset:offset + limit]
            if offset == 0 and srv.null_search_items and page_items:
                # The live API returns null entries among playlist search results (PROVENANCE caveat); the
                # recordings predate that, so one null is added to every first page.
                page_items = page_items[:1] + [None] + page_items[1:]
            return self._json(200, {"playlists": paging(base + "/search", page_items, offset, limit, len(results),
                                                        {"query": word, "type": "playlist"})})
        m = re.fullmatch(r"/v1/playlists/([0-9A-Za-z]+)/(items|tracks)", path)
        if m:
            pid = m.group(1)
            if pid in srv.forbidden_playlists:
                # No recorded 403 body: Spotify's documented error object.
                return self._json(403, {"error": {"status": 403, "message": "Forbidden"}})
            if pid in srv.not_found_playlists or pid not in data.playlists:
                return self._json(404, data.not_found_body)  # the recorded (legacy-shape) not-found body
            items = data.playlist_items(pid)
            return self._json(200, paging(f"{base}/playlists/{pid}/{m.group(2)}", items[offset:offset + limit],
                                          offset, limit, len(items), {}))
        return self._json(404, data.not_found_body)

    # -- Wikidata
    def _sparql(self, params: dict):
        query = params.get("query", "")
        bindings = self.server.fake.wikimedia.bindings()
        m_off = re.search(r"\bOFFSET\s+(\d+)", query, re.I)
        m_lim = re.search(r"\bLIMIT\s+(\d+)", query, re.I)
        off = int(m_off.group(1)) if m_off else 0
        lim = int(m_lim.group(1)) if m_lim else len(bindings)
        body = {"head": {"vars": ["class", "label", "description", "article", "image"]},
                "results": {"bindings": bindings[off:off + lim]}}
        self._json(200, body, ctype="application/sparql-results+json; charset=utf-8")

    # -- Commons
    def _commons_api(self, params: dict):
        srv = self.server.fake
        data = srv.wikimedia
        width = int(params.get("iiurlwidth", 0) or 0) or 640
        pages, normalized = {}, []
        for n, title in enumerate(params.get("titles", "").split("|"), 1):
            if not title:
                continue
            canon = title.replace("_", " ")
            if canon != title:
                normalized.append({"from": title, "to": canon})
            name = canon[5:] if canon.startswith("File:") else canon
            if name in srv.missing_files or name not in data.files:
                # A file Commons does not have: the recorded page shape without imageinfo, as the API answers.
                pages[str(-n)] = {"ns": 6, "title": canon, "missing": "", "imagerepository": ""}
            else:
                pages[str(-n)] = data.imageinfo_page(name, srv.url, width)
        query = {"pages": pages}
        if normalized:
            query = {"normalized": normalized, **query}
        self._json(200, {"batchcomplete": "", "query": query})

    def _upload(self, path: str):
        srv = self.server.fake
        last = unquote(path.rsplit("/", 1)[-1])
        name = re.sub(r"^\d+px-", "", last).replace("_", " ") if "/thumb/" in path else last.replace("_", " ")
        data = srv.wikimedia.photo(name)
        if data is None or name in srv.gone_files:
            return self._send(404, b"<html><body>404 Not Found</body></html>", "text/html; charset=utf-8")
        if name in srv.broken_files:
            data = data[: len(data) // 3]  # a truncated JPEG: the first third of the real bytes
        self._send(200, data, "image/jpeg")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeServer


@dataclass
class FakeServer:
    """The fake APIs on one local port; use as a context manager or call start()/stop()."""

    data_dir: Path
    delay: float = 0.0
    copies: int = 4
    per_word: int = 40
    n_classes: int = 40
    null_search_items: bool = True
    faults: list = field(default_factory=list)
    not_found_playlists: set = field(default_factory=set)
    forbidden_playlists: set = field(default_factory=set)
    missing_files: set = field(default_factory=set)
    gone_files: set = field(default_factory=set)
    broken_files: set = field(default_factory=set)

    def __post_init__(self):
        fixtures = Path(self.data_dir) / "fixtures"
        self.spotify = SpotifyData(fixtures / "spotify-web-api-responses", self.copies, self.per_word)
        self.wikimedia = WikimediaData(fixtures, Path(self.data_dir) / "images" / "caltech101", self.n_classes)
        self.tokens: set[str] = set()
        self.requests: list[Logged] = []
        self._lock = threading.Lock()
        self._token_no = itertools.count(1)
        self._httpd: _Server | None = None

    # -- lifecycle
    def start(self) -> FakeServer:
        """Start serving on 127.0.0.1 with a free port."""
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        threading.Thread(target=self._httpd.serve_forever, name="fake-api", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses
    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """Environment variables pointing a scraper subprocess at this fake."""
        return {"SPOTIPY_CLIENT_ID": CLIENT_ID, "SPOTIPY_CLIENT_SECRET": CLIENT_SECRET,
                "MARCONI_SPOTIFY_API_URL": self.url + "/spotify/v1/",
                "MARCONI_SPOTIFY_TOKEN_URL": self.url + "/spotify/api/token",
                "MARCONI_WIKIDATA_SPARQL_URL": self.url + "/wikidata/sparql",
                "MARCONI_COMMONS_API_URL": self.url + "/commons/w/api.php"}

    def scraper_config(self):
        """A scrapers.config.ScraperConfig pointing at this fake."""
        from scrapers.config import from_env

        return from_env(self.env())

    # -- faults and bookkeeping
    def add_fault(self, path: str, kind: str, times: int = 1, **kwargs) -> Fault:
        """Program a fault for requests whose path matches the regex ``path``; return it (``hits`` counts uses)."""
        fault = Fault(path, kind, times, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, path: str) -> Fault | None:
        """The first fault with uses left matching ``path`` (one use is taken)."""
        with self._lock:
            for f in self.faults:
                if f.hits < f.times and re.search(f.path, path):
                    f.hits += 1
                    return f
        return None

    def clear(self) -> None:
        """Forget faults, special ids and the request log."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()
        for s in (self.not_found_playlists, self.forbidden_playlists, self.missing_files, self.gone_files,
                  self.broken_files):
            s.clear()

    def log(self, entry: Logged) -> None:
        """Record a request."""
        with self._lock:
            self.requests.append(entry)

    def new_token(self) -> str:
        """Issue a new access token."""
        token = f"fake-token-{next(self._token_no)}"
        with self._lock:
            self.tokens.add(token)
        return token

    def hits(self, pattern: str) -> list[Logged]:
        """Logged requests whose path matches ``pattern``."""
        with self._lock:
            return [r for r in self.requests if re.search(pattern, r.path)]
