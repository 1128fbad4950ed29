"""Which URLs and addresses Marconi's URL fetch may reach (the rules; :mod:`marconi.fetch` does the fetching).

A URL must be ``http`` or ``https``, without user names or passwords, at most :data:`MAX_URL_LENGTH` characters,
and name its host as an IP address or a well-formed domain name (IDNA for non-ASCII names): :func:`check_url`.
An address may be connected to when it is globally reachable unicast (``ipaddress``'s ``is_global``, plus the
special-purpose blocks of the IANA registries this Python's tables miss), and every IPv4 address an IPv6 address
carries (IPv4-mapped, 6to4, Teredo, NAT64) is too, unless the operator allowed its network
(``MARCONI_URL_FETCH_ALLOW_NETWORKS``): :func:`address_allowed`. Failures are :class:`FetchError`.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import urllib3
from urllib3.util import parse_url

from marconi.errors import Unprocessable

MAX_URL_LENGTH = 2048


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


def bad_url(message: str) -> FetchError:
    """The 400 for a URL refused by its shape."""
    return FetchError("bad_url", message, 400)


def _checked_host(authority: str, hostname: str, url: str) -> str:
    """The host to connect to: an IP address as it is, a name as ASCII (IDNA); FetchError(bad_url) if neither."""
    try:
        normalised = parse_url(url).host or ""
    except (urllib3.exceptions.LocationParseError, ValueError, UnicodeError):
        raise bad_url(f"the host in {authority[:300]!r} is not a valid IP address or domain name") from None
    if normalised.startswith("["):
        return hostname  # an IPv6 literal, checked by the parser
    name = normalised.rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise bad_url(f"the host {hostname[:300]!r} is not a valid domain name")
    return normalised


def check_url(url) -> tuple[str, str, int]:
    """Validate the shape of a URL; return (scheme, host, port) or raise FetchError (400)."""
    if not isinstance(url, str) or not url.strip():
        raise bad_url("'url' must be a non-empty string such as https://example.org/cat.jpg")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise bad_url(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except ValueError as exc:
        raise bad_url(f"that is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise bad_url(f"only http and https URLs can be fetched, not {scheme or 'a relative URL'!r}; upload a local "
                       "file as multipart field 'image' instead")
    if not hostname:
        raise bad_url("the URL has no host name")
    if parts.username is not None or parts.password is not None:
        raise bad_url("URLs with a user name or password are not fetched")
    if port == 0:
        raise bad_url("port 0 cannot be fetched from")
    host = _checked_host(parts.netloc.rpartition("@")[2], hostname, url)
    return scheme, host, port or (443 if scheme == "https" else 80)
