"""An HTTP server on 127.0.0.1 that misbehaves slowly, to test that one deadline bounds a whole URL fetch.

Socket timeouts bound each wait for bytes, not the sum of the waits, so the hosts worth testing against are the
ones that keep every wait short and never finish. Each path here is one of them:

- ``/drip-headers``: the status line and headers, one byte every ``byte_interval`` seconds, without end (one
  header line that never ends; http.client would only give up after 64 KiB, hours later).
- ``/endless-continue``: ``HTTP/1.1 100 Continue`` responses, one every ``byte_interval`` seconds, for ever
  (http.client skips 100 Continue in a loop that has no limit).
- ``/drip-body``: prompt headers that promise ``body_length`` bytes, then the body one byte every ``byte_interval``.
- ``/hop/<n>``: a 302 to ``/hop/<n+1>``, each response dripped over ``hop_seconds``, so no single hop is slow
  enough to trip a per-request timeout but a few in a row are.
- ``/tls-drip``: for an ``https://`` URL: answers the client's TLS hello with the header of a 16 KiB handshake
  record and then drips the record, so the TLS handshake itself never ends (the path is never read: any path does
  when the client speaks TLS first).

It is a raw socket server (not http.server), so nothing buffers or completes what a test means to leave half sent.
The server records when it found each connection closed by the client (:attr:`SlowServer.closed_after`: seconds
from accepting it to its first failed write), which is how a test sees the client really hung up.
"""

from __future__ import annotations

import re
import socketserver
import threading
import time

_HOP = re.compile(r"/hop/(\d+)")


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.started = time.monotonic()
        self.request.settimeout(5)
        try:
            head = self.request.recv(65536)
            if head[:1] == b"\x16":  # a TLS record (ClientHello): the client wants a handshake
                return self._tls_drip()
            path = head.split(b" ", 2)[1].decode("ascii", "replace") if head.count(b" ") >= 2 else "/"
            self._route(path)
        except OSError:
            self.server.closed_after.append(time.monotonic() - self.started)

    def _route(self, path: str) -> None:
        opts = self.server
        if path == "/drip-headers":
            self._drip(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Drip: ", opts.byte_interval)
            while True:
                self._drip(b"a", opts.byte_interval)
        elif path == "/endless-continue":
            while True:
                self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                time.sleep(opts.byte_interval)
        elif path == "/drip-body":
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"
                                 b"Content-Length: %d\r\n\r\n" % opts.body_length)
            for _ in range(opts.body_length):
                self._drip(b"\xff", opts.byte_interval)
        elif hop := _HOP.fullmatch(path):
            reply = (b"HTTP/1.1 302 Found\r\nLocation: /hop/%d\r\nContent-Length: 0\r\n\r\n"
                     % (int(hop.group(1)) + 1))
            self._drip(reply, opts.hop_seconds / len(reply))
        else:
            self.request.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def _tls_drip(self) -> None:
        self.request.sendall(b"\x16\x03\x03\x40\x00")  # handshake record, TLS 1.2, 16,384 bytes to follow
        while True:
            self._drip(b"\x00", self.server.byte_interval)

    def _drip(self, data: bytes, interval: float) -> None:
        for i in range(len(data)):
            self.request.sendall(data[i:i + 1])
            time.sleep(interval)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    byte_interval: float
    hop_seconds: float
    body_length: int
    closed_after: list

    def handle_error(self, request, client_address) -> None:
        pass  # a client hanging up mid-drip is the point of these tests


class SlowServer:
    """The slow server above on 127.0.0.1:<free port>, as a context manager; :meth:`url` builds its URLs."""

    def __init__(self, byte_interval: float = 0.2, hop_seconds: float = 1.0, body_length: int = 10_000):
        """Configure how slowly it drips (seconds between bytes, seconds per redirect hop, promised body bytes)."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.byte_interval = byte_interval
        self._server.hop_seconds = hop_seconds
        self._server.body_length = body_length
        self._server.closed_after = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="slow-http")

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._server.server_address[1]

    @property
    def closed_after(self) -> list[float]:
        """For each connection the client closed: seconds from accepting it to the write that found it closed."""
        return self._server.closed_after

    def url(self, path: str, scheme: str = "http") -> str:
        """The URL of ``path`` on this server."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> SlowServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
