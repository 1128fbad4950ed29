"""The scrapers' HTTP session against the local fake: User-Agent, timeouts, retries, Retry-After, rate limit."""

from __future__ import annotations

import time

import pytest
import requests

from scrapers.http import USER_AGENT, HttpSettings, ScraperSession, backoff_delay, make_session, parse_retry_after

FAKE_SERVER = {"n_classes": 10}
pytestmark = pytest.mark.usefixtures("fake_cleared")

FAST = HttpSettings(connect_timeout=2.0, read_timeout=2.0, max_retries=3, backoff_base=0.01, backoff_max=0.05)


def _get(session, fake):
    return session.get(fake.url + "/wikidata/sparql", params={"query": "SELECT * LIMIT 2", "format": "json"})


def test_identifies_itself_and_sets_timeouts(fake):
    """Every request carries the Marconi User-Agent with contact; requests get the configured timeout."""
    session = make_session(FAST)
    resp = _get(session, fake)
    assert resp.status_code == 200 and len(resp.json()["results"]["bindings"]) == 2
    ua = fake.hits("/wikidata/sparql")[0].headers["User-Agent"]
    assert ua == USER_AGENT and "marconi@example.org" in ua and "https://" in ua
    assert session.settings.timeout == (2.0, 2.0)


def test_429_honours_retry_after(fake):
    """A 429 with Retry-After: 1 is retried after at least one second, then succeeds."""
    fake.add_fault("/wikidata/sparql", "status", status=429, retry_after="1")
    session = make_session(FAST)
    t0 = time.monotonic()
    resp = _get(session, fake)
    assert resp.status_code == 200
    assert time.monotonic() - t0 >= 1.0
    assert session.stats["retry:HTTP 429"] == 1 and session.stats["requests"] == 2


def test_5xx_retried_with_exponential_backoff_and_jitter(fake):
    """500, 503, 502 in a row: three retries whose delays grow exponentially within the jitter bounds."""
    for status in (500, 503, 502):
        fake.add_fault("/wikidata/sparql", "status", status=status)
    delays = []
    session = ScraperSession(HttpSettings(max_retries=5, backoff_base=0.01, backoff_max=10), sleep=delays.append)
    resp = _get(session, fake)
    assert resp.status_code == 200
    assert len(delays) == 3
    for attempt, d in enumerate(delays):
        full = 0.01 * 2 ** attempt
        assert full / 2 <= d <= full
    assert [r.status for r in fake.hits("/wikidata/sparql")] == [500, 503, 502, 200]


def test_gives_up_after_max_retries_and_returns_last_response(fake):
    """With max_retries=2, a server that keeps answering 503 is asked 3 times and the 503 reaches the caller."""
    fake.add_fault("/wikidata/sparql", "status", status=503, times=10)
    session = make_session(FAST, max_retries=2)
    resp = _get(session, fake)
    assert resp.status_code == 503
    assert len(fake.hits("/wikidata/sparql")) == 3
    assert session.stats["gave_up"] == 1


def test_retry_after_longer_than_limit_is_not_waited_for(fake):
    """Retry-After: 3600 beyond max_retry_after: no sleep, the 429 is returned (the item is failed for later)."""
    fake.add_fault("/wikidata/sparql", "status", status=429, retry_after="3600")
    slept = []
    session = ScraperSession(FAST.with_overrides(max_retry_after=60), sleep=slept.append)
    resp = _get(session, fake)
    assert resp.status_code == 429 and slept == []


def test_slow_response_past_timeout_is_retried(fake):
    """An answer slower than the read timeout raises ReadTimeout inside the session, which retries."""
    fake.add_fault("/wikidata/sparql", "slow", delay=1.0)
    session = make_session(FAST, read_timeout=0.3)
    resp = _get(session, fake)
    assert resp.status_code == 200
    assert session.stats["retry:ReadTimeout"] == 1


def test_connection_reset_is_retried(fake):
    """The server closing the socket without an answer counts as a retryable connection error."""
    fake.add_fault("/wikidata/sparql", "reset")
    session = make_session(FAST)
    resp = _get(session, fake)
    assert resp.status_code == 200
    assert session.stats["retries"] == 1
    assert any(k.startswith("retry:") and "Error" in k for k in session.stats)


def test_connection_reset_every_time_raises_after_retries(fake):
    """Resets on every attempt end in requests.ConnectionError once the retries are used up."""
    fake.add_fault("/wikidata/sparql", "reset", times=10)
    session = make_session(FAST, max_retries=1)
    with pytest.raises(requests.ConnectionError):
        _get(session, fake)
    assert len(fake.hits("/wikidata/sparql")) == 2


def test_malformed_json_is_retried(fake):
    """A 200 whose JSON body does not parse is retried; the next, good body is returned."""
    fake.add_fault("/wikidata/sparql", "malformed")
    session = make_session(FAST)
    resp = _get(session, fake)
    assert resp.json()["head"]["vars"][0] == "class"
    assert session.stats["retry:malformed JSON"] == 1


def test_maxlag_error_is_retried_after_retry_after(fake):
    """A MediaWiki maxlag error (HTTP 200 + MediaWiki-API-Error: maxlag) is retried after its Retry-After."""
    fake.add_fault("/commons/w/api.php", "maxlag", retry_after="0")
    session = make_session(FAST)
    resp = session.get(fake.url + "/commons/w/api.php", params={"action": "query", "titles": "File:X.jpg"})
    assert "query" in resp.json()
    assert session.stats["retry:maxlag"] == 1


def test_rate_limit_spaces_requests(fake):
    """rate=20/s: six requests take at least 0.25 s."""
    session = make_session(FAST, rate=20)
    t0 = time.monotonic()
    for _ in range(6):
        _get(session, fake)
    assert time.monotonic() - t0 >= 0.25


def test_parse_retry_after_and_backoff():
    """Retry-After as seconds or HTTP date; backoff doubles up to the cap with equal jitter."""
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    s = HttpSettings(backoff_base=1.0, backoff_max=8.0)
    assert backoff_delay(0, s, rand=lambda: 0.0) == 0.5 and backoff_delay(0, s, rand=lambda: 1.0) == 1.0
    assert backoff_delay(10, s, rand=lambda: 1.0) == 8.0
