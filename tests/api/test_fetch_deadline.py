"""One wall-clock deadline (MARCONI_URL_FETCH_TIMEOUT) bounds a whole image URL fetch (issue 13).

The hosts here keep every wait for bytes short and never finish (tests/fakes/slow_http.py): status line and
headers dripped a byte every 0.2 s, ``100 Continue`` for ever, a dripped body, redirects that are each quick enough
but slow together, a TLS handshake that never ends. Socket timeouts bound only each wait, so before the deadline
covered the whole fetch, the first two held a server thread for hours and eight of them stopped /healthz.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest
import requests
from fakes.slow_http import SlowServer

from marconi.api.openapi import response_schema
from marconi.fetch import fetch_image_bytes
from marconi.url_rules import FetchError, parse_networks

DEADLINE = 1.5
MARGIN = 0.5  # scheduling slack on a busy machine: the cut-off itself happens at the deadline
LOOPBACK = parse_networks("127.0.0.1/32")  # as an operator allows an intranet image host; 127.0.0.1 is refused else

MISBEHAVING = [("/drip-headers", "http"), ("/endless-continue", "http"), ("/drip-body", "http"), ("/hop/0", "http"),
               ("/tls-drip", "https")]


@pytest.fixture()
def slow():
    """A fresh misbehaving server; each redirect hop takes 0.8 deadlines, so only two in a row pass it."""
    with SlowServer(byte_interval=0.2, hop_seconds=0.8 * DEADLINE) as server:
        yield server


def _eventually(check, wait: float = 2.0) -> bool:
    """Whether ``check()`` comes true within ``wait`` seconds (the slow server notices a hang-up at its next drip)."""
    until = time.monotonic() + wait
    while not check() and time.monotonic() < until:
        time.sleep(0.05)
    return check()


@pytest.mark.parametrize("path, scheme", MISBEHAVING)
def test_the_deadline_covers_every_stage_of_the_fetch(slow, path, scheme):
    t0 = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch_image_bytes(slow.url(path, scheme), max_bytes=1_000_000, timeout=DEADLINE, allow_networks=LOOPBACK)
    elapsed = time.monotonic() - t0
    assert exc.value.code == "url_timeout" and exc.value.status == 422
    assert "too slow" in str(exc.value) and f"within {DEADLINE:g} s" in str(exc.value)
    assert DEADLINE - 0.05 <= elapsed < DEADLINE + MARGIN
    # The connection was really closed (the server's next write failed), not just abandoned by the caller.
    assert _eventually(lambda: slow.closed_after)
    assert max(slow.closed_after) < DEADLINE + MARGIN + 0.5  # + one drip interval for the server to notice


def test_cut_off_fetches_leave_no_socket_or_thread_behind(slow):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counting open descriptors needs /proc")

    def fetch_once():
        fetch_image_bytes(slow.url("/drip-headers"), max_bytes=1000, timeout=0.5, allow_networks=LOOPBACK)

    with pytest.raises(FetchError):
        fetch_once()  # warm up: the resolver's thread pool and lazy imports stay for the process
    assert _eventually(lambda: len(slow.closed_after) == 1)  # the server's side of it is gone too (same process)
    time.sleep(0.1)
    fds, threads = len(os.listdir("/proc/self/fd")), threading.active_count()
    for _ in range(3):
        with pytest.raises(FetchError):
            fetch_once()
    assert _eventually(lambda: len(os.listdir("/proc/self/fd")) <= fds), "a cut-off fetch left a descriptor open"
    assert _eventually(lambda: threading.active_count() <= threads), "a cut-off fetch left a thread running"


def test_the_api_answers_a_too_slow_host_with_a_json_422(db_url, base_config, slow):
    from marconi import create_app

    app = create_app({"database_url": db_url, "home": str(base_config.home), "url_fetch_allow_networks": "127.0.0.1/32",
                      "url_fetch_timeout": DEADLINE})
    client = app.test_client()
    for path in ("/drip-headers", "/endless-continue"):
        t0 = time.monotonic()
        r = client.post("/api/images/search", json={"url": slow.url(path)})
        assert time.monotonic() - t0 < DEADLINE + MARGIN
        assert r.status_code == 422 and r.get_json()["code"] == "url_timeout", r.get_json()
        assert f"within {DEADLINE:g} s" in r.get_json()["error"]
        jsonschema.validate(r.get_json(), response_schema("/api/images/search", "post", 422))


def test_served_app_keeps_answering_while_many_fetches_hit_dripping_hosts(db_url, base_config):
    """Eight URL searches at hosts that never finish, against the served app (gunicorn, default workers): each
    fetch is cut off at its deadline, each search answers 422 url_timeout, and /healthz answers throughout.

    Eight is what held every thread of the 2 × 4 threaded (gthread) workers, which also let one worker accept all
    eight and queue four behind its four threads for one deadline; so the client-side bound is two deadlines (gevent
    workers answer all eight and /healthz at once). The slow server's own record shows each fetch was cut off one
    deadline after it began. Before the fix no search had answered after 25 s and /healthz timed out.
    """
    from marconi.serving import background_gunicorn

    deadline, searches = 2.0, 8
    bound = 2 * deadline + 1.5
    env = {"MARCONI_HOME": str(base_config.home), "MARCONI_URL_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
           "MARCONI_URL_FETCH_TIMEOUT": str(deadline)}
    paths = ["/drip-headers", "/endless-continue", "/drip-body", "/hop/0"]
    with SlowServer(byte_interval=0.2, hop_seconds=0.8 * deadline) as slow, \
            background_gunicorn(db_url, env=env) as base:

        def search(i: int) -> tuple[float, int, dict]:
            t0 = time.monotonic()
            r = requests.post(base + "/api/images/search", json={"url": slow.url(paths[i % len(paths)])},
                              timeout=bound + 10)
            return time.monotonic() - t0, r.status_code, r.json()

        with ThreadPoolExecutor(searches) as pool:
            pending = [pool.submit(search, i) for i in range(searches)]
            time.sleep(0.3)  # let the searches reach the workers
            health = []
            while not all(f.done() for f in pending):
                t0 = time.monotonic()
                r = requests.get(base + "/healthz", timeout=bound + 10)
                health.append((time.monotonic() - t0, r.status_code))
                time.sleep(0.2)
            answers = [f.result() for f in pending]
        _eventually(lambda: len(slow.closed_after) >= searches)
    assert all(status == 422 and body["code"] == "url_timeout" for _, status, body in answers), answers
    assert max(elapsed for elapsed, _, _ in answers) < bound, answers
    assert health and all(status == 200 for _, status in health)
    assert max(latency for latency, _ in health) < bound, health
    assert len(slow.closed_after) == searches  # each search's unfinished connection (a redirect's second hop)
    assert max(slow.closed_after) < deadline + MARGIN + 0.5, slow.closed_after
