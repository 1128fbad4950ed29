"""Fetch an image from a URL a user gave us, safely: public addresses only, bounded in size, time and redirects.

The server makes the request, so a careless fetcher lets anyone reach what only the server can reach (cloud
metadata at 169.254.169.254, the database port, an intranet admin page). The rules here:

- The URL and every address it leads to must pass :mod:`marconi.url_rules` (http(s) only, public addresses only,
  tunnels judged by the IPv4 address they carry, networks the operator allowed). Each address is checked *when the
  socket connects* (no second DNS lookup an attacker could answer differently).
- The name lookup counts against the deadline too (it runs on a small thread pool).
- Redirects are followed by hand, at most :data:`MAX_REDIRECTS`, and each hop is checked again (a ``Location``
  that is not a URL is refused like a bad URL).
- One wall-clock deadline covers the whole fetch: name lookup, connect, TLS, the status line, any number of 1xx
  responses, headers, every redirect hop and the body. Socket timeouts only bound each wait for bytes, so a host
  that drips a byte inside every timeout, or sends ``100 Continue`` for ever (http.client skips those without
  limit), would hold a server thread indefinitely; a :class:`Deadline` timer shuts the connection down when the
  deadline passes, which wakes the fetching thread at once, and the fetch fails with ``url_timeout``.
- The body may not exceed the upload limit: a larger ``Content-Length`` is refused before reading, and a body
  without one stops at the limit. Content encodings are not accepted (no gzip bombs).

Every failure is a :class:`FetchError` (a :class:`marconi.errors.Unprocessable`) with a machine-readable ``code``
and the HTTP status the API answers with (422, or 400 for a URL refused by its shape or address, 413 too large).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urljoin

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util import parse_url

from marconi.url_rules import FetchError, address_allowed, bad_url, check_url

MAX_REDIRECTS = 3
USER_AGENT = "Marconi image search (+https://github.com/marconi; fetches one image per user request)"
_CHUNK = 64 * 1024


_resolver: ThreadPoolExecutor | None = None
_resolver_lock = threading.Lock()


def resolve(host: str, port: int, timeout: float | None) -> list:
    """getaddrinfo with a time limit: the lookup runs on a small thread pool so a slow resolver cannot hold the
    request past its deadline (the lookup itself may finish later in the background)."""
    global _resolver
    with _resolver_lock:
        if _resolver is None:  # created lazily, so forked server workers each get their own threads
            _resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="marconi-dns")
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        raise FetchError("url_timeout", f"looking up {host!r} took longer than {timeout:g} s") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError("url_unreachable", f"could not resolve host {host!r} ({exc})") from None


class Deadline:
    """One wall-clock deadline for a whole fetch, enforced by shutting its sockets down when it passes.

    A timer thread calls :meth:`_cut_off` at the deadline: every socket handed to :meth:`watch` is shut down, so a
    read blocked on it in the fetching thread returns at once (an end of stream, or an error) however the peer
    dribbles its bytes. ``shutdown`` acts on the connection, not on one descriptor, so it works through the TLS layer
    too and leaves the socket objects to their owner, who closes them as usual. :meth:`close` must be called when the
    fetch ends (it stops the timer and closes the duplicates :meth:`watch` keeps).
    """

    def __init__(self, seconds: float):
        """Start the clock: the deadline passes ``seconds`` from now."""
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._cut = False
        self._timer = threading.Timer(seconds, self._cut_off)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        """Seconds left (0 once it has passed)."""
        return max(0.0, self.expires - time.monotonic())

    @property
    def passed(self) -> bool:
        """True once the deadline has passed."""
        return self._cut or time.monotonic() >= self.expires

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock``'s connection down when the deadline passes (at once if it has).

        A duplicate of its descriptor is kept for that: TLS wrapping detaches ``sock`` and moves its descriptor to a
        new object, and a number kept instead could be reused by an unrelated socket once the owner closes this one.
        """
        dup = sock.dup()
        with self._lock:
            self._watched.append(dup)
            if self._cut:
                _shut(dup)

    def _cut_off(self) -> None:
        with self._lock:
            self._cut = True
            for sock in self._watched:
                _shut(sock)

    def close(self) -> None:
        """Stop the timer and close the duplicates kept by :meth:`watch` (the fetch's own sockets are its own)."""
        self._timer.cancel()
        with self._lock:
            for sock in self._watched:
                sock.close()
            self._watched.clear()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected (yet, or any more): nothing to wake


class _Guarded:
    """Connection mixin: resolve once, refuse disallowed addresses, connect to the vetted address, and hand the
    socket to the fetch's :class:`Deadline` before connecting."""

    allow_networks: tuple = ()
    deadline: Deadline

    def _new_conn(self) -> socket.socket:
        infos = resolve(self._dns_host, self.port, self.deadline.remaining())
        for *_, sockaddr in infos:
            if not address_allowed(sockaddr[0], self.allow_networks):
                where = (f"{sockaddr[0]} is" if self.host.strip("[]") == sockaddr[0]
                         else f"{self.host!r} resolves to {sockaddr[0]},")
                raise FetchError("url_not_allowed", f"{where} a private or reserved address; only images on the "
                                                    "public internet are fetched", 400)
        last = None
        for family, socktype, proto, _, sockaddr in infos:
            sock = socket.socket(family, socktype, proto)
            try:
                limit = self.timeout if isinstance(self.timeout, int | float) else None
                sock.settimeout(self.deadline.remaining() if limit is None else min(limit, self.deadline.remaining()))
                for opt in self.socket_options or ():
                    sock.setsockopt(*opt)
                self.deadline.watch(sock)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        if isinstance(last, TimeoutError) or self.deadline.passed:
            raise FetchError("url_timeout", f"connecting to {self.host!r} timed out")
        raise FetchError("url_unreachable", f"could not connect to {self.host!r} ({last})")


def _connection_class(base, allow_networks: tuple, deadline: Deadline):
    return type(f"Guarded{base.__name__}", (_Guarded, base), {"allow_networks": allow_networks, "deadline": deadline})


def fetch_image_bytes(url: str, max_bytes: int, timeout: float = 10.0, allow_networks: tuple = ()) -> bytes:
    """Download ``url`` under the rules in the module docstring, all of it within ``timeout`` s; return the body."""
    deadline = Deadline(timeout)
    try:
        return _fetch(url, max_bytes, deadline, allow_networks)
    finally:
        deadline.close()


def _fetch(url: str, max_bytes: int, deadline: Deadline, allow_networks: tuple) -> bytes:
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        scheme, host, port = check_url(current)
        if deadline.passed:
            raise _too_slow(host, deadline)
        resp, pool = _request(scheme, host, port, current, deadline, allow_networks)
        try:
            if resp.status in (301, 302, 303, 307, 308):
                location = _header_text(resp.headers.get("Location"))
                if not location:
                    raise FetchError("url_status", f"{host!r} answered {resp.status} without a Location")
                try:
                    current = urljoin(current, location)
                except ValueError as exc:
                    raise bad_url(f"{host!r} redirected to {location[:200]!r}, which is not a valid URL ({exc})") \
                        from None
                continue
            return _read_body(resp, host, max_bytes, deadline)
        finally:
            resp.release_conn()
            pool.close()
    raise FetchError("url_redirects", f"more than {MAX_REDIRECTS} redirects")


def _request(scheme: str, host: str, port: int, url: str, deadline: Deadline, allow_networks: tuple):
    """Send the GET for one hop and read its status line and headers; return (response, pool)."""
    if scheme == "https":
        import certifi

        pool = urllib3.HTTPSConnectionPool(host, port, maxsize=1, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
        pool.ConnectionCls = _connection_class(HTTPSConnection, allow_networks, deadline)
    else:
        pool = urllib3.HTTPConnectionPool(host, port, maxsize=1)
        pool.ConnectionCls = _connection_class(HTTPConnection, allow_networks, deadline)
    path = parse_url(url).request_uri  # percent-encodes what may not go on the request line
    remaining = deadline.remaining()
    try:
        resp = pool.urlopen("GET", path, redirect=False, retries=False, preload_content=False, decode_content=False,
                            assert_same_host=False, timeout=urllib3.Timeout(connect=min(remaining, 5.0),
                                                                            read=remaining),
                            headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"})
    except Exception as exc:
        pool.close()
        raise _failure(exc, host, deadline) from None
    if deadline.passed:  # cut off mid-headers, http.client returns what it had: a truncated response
        resp.release_conn()
        pool.close()
        raise _too_slow(host, deadline)
    return resp, pool


def _too_slow(host: str, deadline: Deadline) -> FetchError:
    return FetchError("url_timeout", f"{host!r} was too slow: the whole fetch (connecting, redirects, headers and "
                                     f"body) must finish within {deadline.seconds:g} s")


def _failure(exc: Exception, host: str, deadline: Deadline, broken: str = "") -> Exception:
    """The FetchError for an exception raised while fetching from ``host``: ``url_timeout`` for anything once the
    deadline has passed (cutting the connection off makes the read fail in whatever way it was reading), else
    ``url_unreachable`` (``broken`` says how, by default "could not fetch from <host>"); unknown ones as they are."""
    if isinstance(exc, FetchError):
        return exc
    if deadline.passed or isinstance(exc, urllib3.exceptions.TimeoutError):
        return _too_slow(host, deadline)
    if isinstance(exc, urllib3.exceptions.SSLError):
        return FetchError("url_unreachable", f"TLS to {host!r} failed ({exc.__class__.__name__})")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | http.client.HTTPException):
        return FetchError("url_unreachable", f"{broken or f'could not fetch from {host!r}'} "
                                             f"({exc.__class__.__name__})")
    return exc


def _header_text(value: str | None) -> str | None:
    """A header as the server meant it: http.client reads header bytes as Latin-1; UTF-8 bytes are decoded as such."""
    if value is None:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _read_body(resp, host: str, max_bytes: int, deadline: Deadline) -> bytes:
    if resp.status != 200:
        raise FetchError("url_status", f"{host!r} answered HTTP {resp.status}, not an image")
    ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype.startswith("text/") or ctype in ("application/json", "application/xhtml+xml"):
        raise FetchError("not_an_image", f"the URL returned {ctype}, not an image: link to the image file itself "
                                         "(on Commons, the 'Original file' link)", 400)
    encoding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise FetchError("url_status", f"{host!r} sent the image with Content-Encoding {encoding!r}, which is not "
                                       "accepted")
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", f"the image is {int(declared):,} bytes; the limit is {max_bytes:,}", 413)
    chunks, size = [], 0
    while True:
        try:
            chunk = resp.read1(_CHUNK)
        except Exception as exc:
            raise _failure(exc, host, deadline, f"the download from {host!r} broke off") from None
        if deadline.passed:  # the cut-off may end the stream cleanly when no length was promised
            raise _too_slow(host, deadline)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise FetchError("too_large", f"the image is larger than the limit of {max_bytes:,} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)
