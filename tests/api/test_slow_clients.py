"""Slow clients (slowloris) must not starve the server: the served gunicorn keeps answering while many
connections drip their request headers or bodies a byte at a time.

Before: gthread workers read a request's headers in a worker thread, so 16 dripping connections held all 2 × 4
threads and /healthz timed out.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from marconi.serving import background_gunicorn

SLOW_CLIENTS = 24  # more than the old 2 workers × 4 threads, three times over


class Dripper:
    """Open ``n`` connections to ``base`` and keep each sending one more byte of ``payload`` every ``every`` s."""

    def __init__(self, base: str, payload: bytes, n: int, every: float = 0.5):
        url = urlsplit(base)
        self.address = (url.hostname, url.port)
        self.payload, self.n, self.every = payload, n, every
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []
        self.sent = 0

    def __enter__(self) -> Dripper:
        for _ in range(self.n):
            s = socket.create_connection(self.address, timeout=5)
            self.sockets.append(s)
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()
        time.sleep(1.0)  # every connection has been accepted and has sent something
        return self

    def _drip(self) -> None:
        position = 0
        while not self.stop.is_set() and position < len(self.payload):
            byte = self.payload[position:position + 1]
            for s in self.sockets:
                try:
                    s.sendall(byte)
                except OSError:
                    pass
            position += 1
            self.sent = position
            self.stop.wait(self.every)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)
        for s in self.sockets:
            s.close()


def _healthz_latencies(base: str, tries: int = 5) -> list[float]:
    out = []
    for _ in range(tries):
        started = time.monotonic()
        assert requests.get(base + "/healthz", timeout=5).ok
        out.append(time.monotonic() - started)
        time.sleep(0.2)
    return out


@pytest.fixture(scope="module")
def served(trained_url, base_config):
    with background_gunicorn(trained_url[0], env={"MARCONI_HOME": str(base_config.home)}) as base:
        yield base


HEADERS = b"GET /api/songs?limit=1 HTTP/1.1\r\nHost: x\r\n" + b"".join(
    b"X-Pad-%d: %s\r\n" % (i, b"a" * 20) for i in range(100))


def test_clients_dripping_their_headers_do_not_starve_the_server(served):
    with Dripper(served, HEADERS, SLOW_CLIENTS) as dripper:
        latencies = _healthz_latencies(served)
        answer = requests.get(served + "/api/songs?q=love&limit=1", timeout=5)
        assert dripper.sent > 2  # the slow clients were still mid-way through their headers
    assert max(latencies) < 1.0, latencies
    assert answer.status_code == 200


def test_clients_dripping_their_bodies_do_not_starve_the_server(served):
    body = b'{"seeds": ["' + b"x" * 200 + b'"]}'
    head = (b"POST /api/radio HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with Dripper(served, head + body, SLOW_CLIENTS, every=0.05) as dripper:
        time.sleep(len(head) * 0.05)  # the headers are complete: now the bodies drip
        latencies = _healthz_latencies(served)
        assert dripper.sent < len(head) + len(body)
    assert max(latencies) < 1.0, latencies
