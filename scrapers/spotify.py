"""Spotify: playlist discovery by title-word expansion, then every discovered playlist's tracks.

Discovery (as in the original marconi): search playlists for a word (first "a"), store the playlists found, count
the words of every stored title, search the most frequent word not searched yet, and so on up to a number of
playlists. Each search page is stored in one transaction together with the word's next offset, so a restart
continues at the page where the previous run stopped.

Tracks: for every discovered playlist, page through its items; null tracks, local files and episodes are skipped
and counted; 404/403 playlists are marked and skipped; a playlist, its tracks and its 'done' mark are written in
one transaction (never half-written). Failures after the HTTP session's retries are recorded for a later pass.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import requests
import spotipy
import sqlalchemy as sa
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.exceptions import SpotifyException, SpotifyOauthError
from spotipy.oauth2 import SpotifyClientCredentials

from marconi.db import scrape
from marconi.db.playlists import Playlist, upsert_playlists
from marconi.db.tracks import Track, upsert_tracks
from marconi.progress import progress as progress_bar
from scrapers import bounded_map, finish_summary
from scrapers.config import ScraperConfig
from scrapers.http import ScraperSession

log = logging.getLogger(__name__)

SEED_WORD = "a"
SEARCH_PAGE_MAX = 50  # Spotify's maximum 'limit' for search
ITEMS_PAGE_MAX = 100  # ... and for playlist items
SEARCH_OFFSET_MAX = 1000  # Spotify returns nothing past offset 1000 of a search
ITEM_FIELDS = "items(is_local,track(id,name,type,is_local,duration_ms,artists(name))),total,limit,offset,next"
_WORD = re.compile(r"\w+")


class SpotifyApiError(Exception):
    """A Spotify call that failed after the session's retries; ``status`` is the HTTP status when there was one."""

    def __init__(self, status: int | None, message: str):
        """Create the error from an HTTP status (or None) and a message."""
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


class SpotifyAuthError(RuntimeError):
    """Client-credentials authentication failed (missing or wrong SPOTIPY_CLIENT_ID / SPOTIPY_CLIENT_SECRET)."""


class _ClientCredentials(SpotifyClientCredentials):
    """spotipy's client-credentials flow with a configurable token URL."""

    def __init__(self, token_url: str, **kwargs):
        """Create the manager; ``token_url`` replaces spotipy's OAUTH_TOKEN_URL."""
        super().__init__(**kwargs)
        self.OAUTH_TOKEN_URL = token_url

    def forget_token(self) -> None:
        """Drop the cached token so the next call fetches a new one."""
        self.cache_handler.save_token_to_cache(None)


class SpotifyClient:
    """spotipy on the scrapers' session: client-credentials auth, no prompt, spotipy's own retries off.

    A 401 (token expired or revoked before its announced expiry) drops the token and retries the call once.
    """

    def __init__(self, config: ScraperConfig, session: ScraperSession):
        """Build the client from the scraper config (credentials, API and token URLs) and the shared session."""
        if not config.has_spotify_credentials:
            raise SpotifyAuthError("set SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET (a Spotify app's client "
                                   "credentials, https://developer.spotify.com/dashboard)")
        self.session = session
        self.auth = _ClientCredentials(
            config.spotify_token_url, client_id=config.spotify_client_id,
            client_secret=config.spotify_client_secret, requests_session=session,
            requests_timeout=session.settings.timeout, cache_handler=MemoryCacheHandler())
        # Passing our session means spotipy builds no urllib3 Retry of its own; zero retries says so explicitly.
        self.sp = spotipy.Spotify(auth_manager=self.auth, requests_session=session,
                                  requests_timeout=session.settings.timeout, retries=0, status_retries=0,
                                  backoff_factor=0)
        self.sp.prefix = config.spotify_api_url.rstrip("/") + "/"

    def _call(self, method, *args, **kwargs) -> dict:
        for attempt in range(2):
            try:
                result = method(*args, **kwargs)
            except SpotifyOauthError as exc:
                raise SpotifyAuthError(f"Spotify token request failed: {exc}") from None
            except SpotifyException as exc:
                if exc.http_status == 401 and attempt == 0:
                    log.info("Spotify answered 401 (token expired?): fetching a new token")
                    self.auth.forget_token()
                    continue
                raise SpotifyApiError(exc.http_status, str(exc.msg).strip()) from None
            if not isinstance(result, dict):  # spotipy turns an unparsable body into None
                raise SpotifyApiError(None, "malformed response (not a JSON object)")
            return result
        raise AssertionError("unreachable")

    def search_playlists(self, word: str, offset: int, limit: int) -> dict:
        """One page of playlists matching ``word``: the search response's 'playlists' paging object."""
        page = self._call(self.sp.search, q=word, type="playlist", limit=limit, offset=offset)
        if not isinstance(page.get("playlists"), dict):
            raise SpotifyApiError(None, "malformed search response (no 'playlists')")
        return page["playlists"]

    def playlist_items(self, playlist_id: str, offset: int, limit: int) -> dict:
        """One page of a playlist's items (paging object)."""
        page = self._call(self.sp.playlist_items, playlist_id, fields=ITEM_FIELDS, limit=limit, offset=offset,
                          additional_types=("track",))
        if not isinstance(page.get("items"), list):
            raise SpotifyApiError(None, "malformed playlist items response (no 'items')")
        return page


# ----------------------------------------------------------------------------------------------- parsing
def title_words(name: str | None) -> set[str]:
    """The distinct lower-case words of a playlist title."""
    return set(_WORD.findall((name or "").casefold()))


def parse_search_page(page: dict) -> tuple[list[dict], int | None, bool]:
    """Return (playlists, total, has_next) from a search paging object; null or id-less items are dropped."""
    found = []
    for item in page.get("items") or []:
        if not isinstance(item, dict) or not item.get("id"):
            continue
        owner = item.get("owner") or {}
        tracks = item.get("tracks") or {}
        found.append({"id": item["id"], "name": item.get("name"), "owner": owner.get("id"),
                      "snapshot_id": item.get("snapshot_id"), "n_tracks": tracks.get("total")})
    return found, page.get("total"), bool(page.get("next"))


def item_track(item) -> Track | str:
    """A playlist item as a Track, or why it is skipped: 'null', 'local' or 'other' (episodes and the like)."""
    if not isinstance(item, dict):
        return "null"
    track = item.get("track")
    if item.get("is_local") or (isinstance(track, dict) and track.get("is_local")):
        return "local"
    if not isinstance(track, dict):
        return "null"
    if track.get("type", "track") != "track":
        return "other"
    if not track.get("id"):
        return "null"
    artists = ", ".join(a["name"] for a in track.get("artists") or [] if isinstance(a, dict) and a.get("name"))
    return Track(key=f"spotify:track:{track['id']}", title=track.get("name") or "", artist=artists,
                 duration_ms=track.get("duration_ms"))


@dataclass
class PlaylistResult:
    """The outcome of fetching one playlist's items."""

    status: str  # done / not_found / forbidden / failed
    tracks: list[Track] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    error: str | None = None


def fetch_playlist(client: SpotifyClient, playlist_id: str, page_size: int = ITEMS_PAGE_MAX) -> PlaylistResult:
    """Page through a playlist's items; never raises for API trouble (it becomes the result's status)."""
    result = PlaylistResult("done")
    offset = 0
    try:
        while True:
            page = client.playlist_items(playlist_id, offset, page_size)
            items = page["items"]
            for item in items:
                t = item_track(item)
                if isinstance(t, Track):
                    result.tracks.append(t)
                else:
                    result.counts[t] += 1
            offset += len(items)
            total = page.get("total")
            if not page.get("next") or not items or (total is not None and offset >= total):
                break
    except SpotifyApiError as exc:
        status = {404: "not_found", 403: "forbidden"}.get(exc.status, "failed")
        return PlaylistResult(status, error=str(exc))
    except requests.RequestException as exc:
        return PlaylistResult("failed", error=f"{type(exc).__name__}: {exc}")
    result.counts["tracks"] = len(result.tracks)
    return result


# ---------------------------------------------------------------------------------------------------- jobs
def _take_new(items: list[dict], known: set[str], remaining: int) -> tuple[list[dict], bool]:
    """New playlists of a page in order (deduplicated), at most ``remaining``; and whether all new ones fit."""
    seen = set(known)
    new = []
    for p in items:
        if p["id"] not in seen:
            seen.add(p["id"])
            new.append(p)
    return new[:max(remaining, 0)], len(new) <= remaining


def discover(engine: sa.Engine, client: SpotifyClient, max_playlists: int = 1000, page_size: int = SEARCH_PAGE_MAX,
             seed_word: str = SEED_WORD, max_attempts: int = 3, max_failures_in_a_row: int = 3,
             progress: bool = True) -> dict:
    """Discover playlists by title-word expansion until ``max_playlists`` are known; return a summary.

    ``max_playlists`` counts every discovered playlist in the database, so re-running with the same number after a
    kill finishes the same job. Failed words are retried by later runs until ``max_attempts`` failures; after
    ``max_failures_in_a_row`` failed searches (an outage, a long Retry-After) the run stops for a later one.
    """
    if not 1 <= page_size <= SEARCH_PAGE_MAX:
        raise ValueError(f"page_size must be 1..{SEARCH_PAGE_MAX}")
    started = time.monotonic()
    summary = {"words": 0, "pages": 0, "playlists": 0, "failed": 0, "stopped": None}
    with engine.begin() as conn:
        scrape.reopen_failed_words(conn, max_attempts)
        have = scrape.discovered_count(conn)
    failed_now: set[str] = set()
    in_a_row = 0
    last_word = None
    bar = progress_bar(total=max_playlists, initial=min(have, max_playlists), unit="playlist", desc="discover",
                       enabled=progress)
    try:
        while True:
            with engine.begin() as conn:
                if scrape.discovered_count(conn) >= max_playlists:
                    summary["stopped"] = "max_playlists reached"
                    break
                nxt = scrape.next_search_word(conn, seed_word, failed_now)
            if nxt is None:
                summary["stopped"] = "no unsearched title words left"
                break
            word, offset = nxt
            if word != last_word:
                summary["words"] += 1
                last_word = word
                bar.set_postfix_str(f"word={word!r}")
            try:
                page = client.search_playlists(word, offset, page_size)
            except (SpotifyApiError, requests.RequestException) as exc:
                log.warning("search %r at offset %d failed: %s", word, offset, exc)
                with engine.begin() as conn:
                    scrape.fail_word(conn, word, str(exc))
                failed_now.add(word)
                summary["failed"] += 1
                in_a_row += 1
                if in_a_row >= max_failures_in_a_row:
                    summary["stopped"] = f"{in_a_row} searches failed in a row (last: {exc}); run again later"
                    break
                continue
            in_a_row = 0
            items, total, has_next = parse_search_page(page)
            with engine.begin() as conn:
                remaining = max_playlists - scrape.discovered_count(conn)
                known = scrape.known_playlist_ids(conn, [p["id"] for p in items])
                take, all_fit = _take_new(items, known, remaining)
                inserted = set(scrape.add_discovered(conn, take, word))
                words = Counter(w for p in take if p["id"] in inserted for w in title_words(p.get("name")))
                scrape.add_title_words(conn, words)
                next_offset = offset + page_size if all_fit else offset
                done = all_fit and (not has_next or not page.get("items") or next_offset >= SEARCH_OFFSET_MAX)
                scrape.advance_word(conn, word, next_offset, total, len(inserted), done)
            summary["pages"] += 1
            summary["playlists"] += len(inserted)
            bar.update(len(inserted))
    finally:
        bar.close()
    with engine.connect() as conn:
        summary["discovered_total"] = scrape.discovered_count(conn)
    return finish_summary(summary, started, client.session, "playlists")


def _write_playlist(conn: sa.Connection, row: dict, result: PlaylistResult) -> None:
    """Write one fetched playlist and its state in the caller's transaction."""
    if result.status == "done":
        upsert_tracks(conn, result.tracks)
        upsert_playlists(conn, [Playlist(key=f"spotify:playlist:{row['playlist_id']}", source="spotify",
                                         name=row["name"], owner=row["owner"], snapshot_id=row["snapshot_id"],
                                         track_keys=[t.key for t in result.tracks])])
    scrape.mark_playlist(conn, row["playlist_id"], result.status, result.error, result.counts)


def fetch_tracks(engine: sa.Engine, client: SpotifyClient, page_size: int = ITEMS_PAGE_MAX, concurrency: int = 2,
                 max_attempts: int = 3, limit: int | None = None, max_failures_in_a_row: int = 10,
                 progress: bool = True) -> dict:
    """Fetch the tracks of every discovered playlist not done yet (``limit`` playlists at most); return a summary.

    Items are fetched by ``concurrency`` threads; each playlist is written with its tracks in one transaction.
    After ``max_failures_in_a_row`` failed playlists (an outage) the run stops; the rest stay pending.
    """
    if not 1 <= page_size <= ITEMS_PAGE_MAX:
        raise ValueError(f"page_size must be 1..{ITEMS_PAGE_MAX}")
    started = time.monotonic()
    with engine.connect() as conn:
        todo = scrape.playlists_to_fetch(conn, max_attempts, limit)
    summary = {"playlists": 0, "fetched": 0, "skipped": 0, "failed": 0, "tracks": 0, "skipped_null_tracks": 0,
               "skipped_local_files": 0, "skipped_other_items": 0, "not_found": 0, "forbidden": 0, "stopped": None}
    in_a_row = 0
    bar = progress_bar(total=len(todo), unit="playlist", desc="tracks", enabled=progress)
    try:
        for row, result in bounded_map(lambda r: fetch_playlist(client, r["playlist_id"], page_size), todo,
                                       concurrency):
            with engine.begin() as conn:
                _write_playlist(conn, row, result)
            summary["playlists"] += 1
            if result.status == "done":
                summary["fetched"] += 1
                summary["tracks"] += len(result.tracks)
                summary["skipped_null_tracks"] += result.counts["null"]
                summary["skipped_local_files"] += result.counts["local"]
                summary["skipped_other_items"] += result.counts["other"]
            elif result.status == "failed":
                summary["failed"] += 1
                log.warning("playlist %s failed: %s", row["playlist_id"], result.error)
            else:
                summary["skipped"] += 1
                summary[result.status] += 1
            bar.update(1)
            bar.set_postfix(fetched=summary["fetched"], skipped=summary["skipped"], failed=summary["failed"])
            in_a_row = in_a_row + 1 if result.status == "failed" else 0
            if in_a_row >= max_failures_in_a_row:
                summary["stopped"] = f"{in_a_row} playlists failed in a row (last: {result.error}); run again later"
                break
    finally:
        bar.close()
    return finish_summary(summary, started, client.session, "playlists")
