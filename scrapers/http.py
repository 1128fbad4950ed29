"""The one configured HTTP session every scraper uses: timeouts, retries, rate limit, identifying User-Agent.

Retry policy (the only one in force; spotipy's own retries are switched off):

- retried: HTTP 429, 500, 502, 503, 504; a MediaWiki ``maxlag`` error (HTTP 200 with ``MediaWiki-API-Error:
  maxlag``); a JSON content type whose body does not parse; connection errors and resets; connect and read timeouts.
- delay: ``Retry-After`` (seconds or an HTTP date) when the server sends one, otherwise exponential backoff
  ``backoff_base * 2**attempt`` capped at ``backoff_max``, with jitter (a random half of the delay).
- a ``Retry-After`` longer than ``max_retry_after`` is not waited for: the response is returned at once and the
  caller records the item as failed for a later pass.
- after ``max_retries`` retries the last response is returned (callers see its status) or the last exception raised.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

USER_AGENT = "Marconi/0.1 (https://github.com/marconi-recsys/marconi; marconi@example.org)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_EXCEPTIONS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts, retry policy, rate and concurrency of outbound calls."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    rate: float = 0.0  # requests per second over all threads; 0 = no limit
    concurrency: int = 2  # worker threads of the scrapers that fetch items in parallel
    user_agent: str = USER_AGENT

    @property
    def timeout(self) -> tuple[float, float]:
        """The (connect, read) timeout pair requests expects."""
        return (self.connect_timeout, self.read_timeout)

    def with_overrides(self, **overrides) -> HttpSettings:
        """Return a copy with the non-None overrides applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait according to a Retry-After header (delta-seconds or HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, settings: HttpSettings, rand: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``attempt`` (0-based): capped exponential backoff with 'equal jitter'."""
    delay = min(settings.backoff_max, settings.backoff_base * (2 ** attempt))
    return delay / 2 + rand() * delay / 2


def _bad_json(resp: requests.Response) -> bool:
    """True when the response says it is JSON but its body does not parse."""
    ctype = resp.headers.get("Content-Type", "")
    if "json" not in ctype or not resp.content:
        return False
    try:
        json.loads(resp.content)
    except ValueError:
        return True
    return False


class ScraperSession(requests.Session):
    """A requests.Session that retries, rate-limits and identifies itself; ``stats`` counts what happened."""

    def __init__(self, settings: HttpSettings, sleep: Callable[[float], None] = time.sleep):
        """Create the session; ``sleep`` is injectable for tests."""
        super().__init__()
        self.settings = settings
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self.stats: Counter = Counter()
        self.headers["User-Agent"] = settings.user_agent
        pool = max(10, settings.concurrency * 2)
        adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n

    def _throttle(self) -> None:
        """Space request starts at least 1/rate seconds apart, over all threads."""
        if self.settings.rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.settings.rate
        if slot > now:
            self._sleep(slot - now)

    def request(self, method, url, *args, **kwargs) -> requests.Response:
        """Send a request under the retry policy described in the module docstring."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.settings.timeout
        attempt = 0
        while True:
            self._throttle()
            self._count("requests")
            try:
                resp = super().request(method, url, *args, **kwargs)
            except RETRY_EXCEPTIONS as exc:
                if attempt >= self.settings.max_retries:
                    self._count("gave_up")
                    raise
                reason, delay = type(exc).__name__, backoff_delay(attempt, self.settings)
            else:
                reason = self._retry_reason(resp)
                if reason is None:
                    return resp
                if attempt >= self.settings.max_retries:
                    self._count("gave_up")
                    return resp
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is not None and retry_after > self.settings.max_retry_after:
                    log.warning("%s %s: Retry-After %.0fs exceeds the %.0fs limit; giving up for now",
                                method, url, retry_after, self.settings.max_retry_after)
                    self._count("gave_up")
                    return resp
                delay = retry_after if retry_after is not None else backoff_delay(attempt, self.settings)
                resp.close()
            self._count("retries")
            self._count(f"retry:{reason}")
            log.info("%s %s: %s, retry %d/%d in %.2fs", method, url, reason, attempt + 1,
                     self.settings.max_retries, delay)
            self._sleep(delay)
            attempt += 1

    @staticmethod
    def _retry_reason(resp: requests.Response) -> str | None:
        """Why this response should be retried, or None when it should not."""
        if resp.status_code in RETRY_STATUSES:
            return f"HTTP {resp.status_code}"
        if resp.headers.get("MediaWiki-API-Error") == "maxlag":
            return "maxlag"
        if resp.ok and _bad_json(resp):
            return "malformed JSON"
        return None


def get_json(session: requests.Session, url: str, error: type[Exception], what: str = "JSON", **kwargs):
    """GET ``url`` through the session and return the parsed JSON body.

    Raises ``error`` when the request fails after the session's retries, the final status is not 200, or the body
    is not JSON (``what`` names it in that message).
    """
    try:
        resp = session.get(url, **kwargs)
    except requests.RequestException as exc:
        raise error(f"{type(exc).__name__}: {exc}") from None
    if resp.status_code != 200:
        raise error(f"HTTP {resp.status_code}: {resp.text[:300]}")
    try:
        return resp.json()
    except ValueError:
        raise error(f"malformed {what}: {resp.text[:200]!r}") from None


def make_session(settings: HttpSettings | None = None, **overrides) -> ScraperSession:
    """Return the configured session (settings plus keyword overrides such as ``backoff_base=0.01``)."""
    settings = (settings or HttpSettings()).with_overrides(**overrides)
    return ScraperSession(settings)
