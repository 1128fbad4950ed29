"""Fetch an image from a URL a user gave us, safely: public addresses only, bounded in size, time and redirects.

The server makes the request, so a careless fetcher lets anyone reach what only the server can reach (cloud
metadata at 169.254.169.254, the database port, an intranet admin page). The rules here:

- Only ``http`` and ``https`` URLs, without user names or passwords in them, at most 2,048 characters, whose host
  is an IP address or a well-formed domain name (IDNA for non-ASCII names).
- The name lookup counts against the deadline too (it runs on a small thread pool).
- Every address a host name resolves to is checked *when the socket connects* (no second DNS lookup an attacker
  could answer differently): only globally reachable unicast addresses pass (``ipaddress``'s ``is_global``, plus the
  special-purpose blocks of the IANA registries that this Python's tables miss). An IPv6 address that carries an
  IPv4 address (IPv4-mapped, 6to4 ``2002::/16``, Teredo ``2001::/32``, NAT64 ``64:ff9b::/96`` and
  ``64:ff9b:1::/48``) passes only if the IPv4 address does too. A network the operator allowed
  (``MARCONI_URL_FETCH_ALLOW_NETWORKS``, e.g. an intranet image host) is let through, and so is a tunnel address
  whose IPv4 address lies in one.
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
import ipaddress
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util import parse_url

from marconi.errors import Unprocessable

MAX_URL_LENGTH = 2048
MAX_REDIRECTS = 3
USER_AGENT = "Marconi image search (+https://github.com/marconi; fetches one image per user request)"
_CHUNK = 64 * 1024


class FetchError(Unprocessable):
    """A URL that could not be fetched; ``code`` is machine-readable, ``status`` the HTTP status (422 unless said)."""

    def __init__(self, code: str, message: str, status: int = 422):
        """Create the error."""
        super().__init__(message, code=code, status=status)


def parse_networks(spec: str | None) -> tuple:
    """Parse a comma-separated list of CIDR networks (``"10.1.0.0/16, 127.0.0.1/32"``); raise ValueError if bad."""
    out = []
    for part in (spec or "").split(","):
        if part.strip():
            out.append(ipaddress.ip_network(part.strip(), strict=False))
    return tuple(out)


# Special-purpose blocks that are not globally reachable (IANA registries) but that ``is_global`` of this Python's
# ipaddress lets through (its tables changed in later releases): listed here so the rule does not hang on the version.
NOT_GLOBAL = tuple(ipaddress.ip_network(n) for n in (
    "192.0.0.0/24",    # IETF protocol assignments (192.0.0.8 is IPv4 dummy; 3.11's tables call it global)
    "fec0::/10",       # deprecated site-local, still routed inside some networks
    "3fff::/20",       # documentation (RFC 9637)
    "64:ff9b:1::/48",  # NAT64 local use (RFC 8215): translated inside one network
))
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: stands for its IPv4 address, on any network
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and would reach: 6to4's, Teredo's server and client, and the one
    a NAT64 prefix translates to (for the local-use /48, every place RFC 6052 lets a prefix length put it)."""
    found = [a for a in (addr.sixtofour, *(addr.teredo or ())) if a is not None]
    packed = addr.packed
    if addr in NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(packed[12:]))
    elif addr in NAT64_LOCAL:  # a /48 prefix puts it at bytes 6-7 and 9-10; a /96 one (inside the /48) at 12-15
        found += [ipaddress.IPv4Address(packed[6:8] + packed[9:11]), ipaddress.IPv4Address(packed[12:])]
    return found


def _public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally reachable unicast: ``is_global``, not multicast, reserved, unspecified, site-local or NOT_GLOBAL."""
    if isinstance(addr, ipaddress.IPv6Address) and addr in NAT64_WELL_KNOWN:
        return True  # judged by the IPv4 address it stands for (ipaddress files the prefix under reserved ::/8)
    return (addr.is_global and not (addr.is_multicast or addr.is_reserved or addr.is_unspecified)
            and not (isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local)
            and not any(addr in net for net in NOT_GLOBAL if net.version == addr.version))


def address_allowed(ip: str, allow_networks: tuple = ()) -> bool:
    """True when ``ip`` is a public unicast address (and so is every IPv4 address it carries), or lies in one of
    ``allow_networks``."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped

    def allowed(a) -> bool:
        return any(a in net for net in allow_networks if net.version == a.version)

    if allowed(addr):
        return True
    if not _public(addr):
        return False
    inner = embedded_ipv4(addr) if isinstance(addr, ipaddress.IPv6Address) else []
    return all(allowed(v4) or _public(v4) for v4 in inner)


_LABEL = re.compile(r"[a-z0-9_-]{1,63}")


def _bad_url(message: str) -> FetchError:
    return FetchError("bad_url", message, 400)


def _checked_host(authority: str, hostname: str, url: str) -> str:
    """The host to connect to: an IP address as it is, a name as ASCII (IDNA); FetchError(bad_url) if neither."""
    try:
        normalised = parse_url(url).host or ""
    except (urllib3.exceptions.LocationParseError, ValueError, UnicodeError):
        raise _bad_url(f"the host in {authority[:300]!r} is not a valid IP address or domain name") from None
    if normalised.startswith("["):
        return hostname  # an IPv6 literal, checked by the parser
    name = normalised.rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise _bad_url(f"the host {hostname[:300]!r} is not a valid domain name")
    return normalised


def check_url(url) -> tuple[str, str, int]:
    """Validate the shape of a URL; return (scheme, host, port) or raise FetchError (400)."""
    if not isinstance(url, str) or not url.strip():
        raise _bad_url("'url' must be a non-empty string such as https://example.org/cat.jpg")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise _bad_url(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except ValueError as exc:
        raise _bad_url(f"that is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _bad_url(f"only http and https URLs can be fetched, not {scheme or 'a relative URL'!r}; upload a local "
                       "file as multipart field 'image' instead")
    if not hostname:
        raise _bad_url("the URL has no host name")
    if parts.username is not None or parts.password is not None:
        raise _bad_url("URLs with a user name or password are not fetched")
    if port == 0:
        raise _bad_url("port 0 cannot be fetched from")
    host = _checked_host(parts.netloc.rpartition("@")[2], hostname, url)
    return scheme, host, port or (443 if scheme == "https" else 80)


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
                    raise _bad_url(f"{host!r} redirected to {location[:200]!r}, which is not a valid URL ({exc})") \
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
