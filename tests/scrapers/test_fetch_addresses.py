"""marconi.fetch (issue 13): hosts that cannot be parsed are bad URLs wherever they come from (the user, or a
redirect from a real HTTP server on 127.0.0.1), and addresses that carry a private IPv4 address (6to4, Teredo,
NAT64) or that this Python's ``is_global`` misfiles are refused unless the operator allowed them."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from marconi.fetch import fetch_image_bytes
from marconi.url_rules import FetchError, address_allowed, check_url, embedded_ipv4, parse_networks

LOOPBACK = parse_networks("127.0.0.1/32")


# ------------------------------------------------------------------------------------------------------ addresses
@pytest.mark.parametrize("ip", [
    "2002:7f00:1::",                          # 6to4 of 127.0.0.1
    "2002:a00:1::1",                          # 6to4 of 10.0.0.1
    "2002:a9fe:a9fe::",                       # 6to4 of 169.254.169.254 (cloud metadata)
    "2001:0:4136:e378:8000:63bf:80ff:fffe",   # Teredo, client 127.0.0.1
    "64:ff9b::7f00:1",                        # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",                     # NAT64 of 169.254.169.254
    "64:ff9b:1:7f00:0:100::",                 # local-use NAT64 (/48 layout) of 127.0.0.1
    "64:ff9b:1::808:808",                     # local-use NAT64: translated inside one network only
    "192.0.0.8", "192.0.0.170",               # IETF protocol assignments (3.11 calls 192.0.0.8 global)
    "fec0::1",                                # deprecated site-local
    "3fff::1",                                # documentation (RFC 9637)
    "::127.0.0.1", "::ffff:0:7f00:1",         # IPv4-compatible and IPv4-translated forms
])
def test_addresses_carrying_or_being_private_ones_are_refused(ip):
    assert address_allowed(ip) is False


@pytest.mark.parametrize("ip", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_pass(ip):
    assert address_allowed(ip) is True


def test_the_embedded_ipv4_addresses():
    import ipaddress

    def v4(ip):
        return [str(a) for a in embedded_ipv4(ipaddress.ip_address(ip))]

    assert v4("2002:7f00:1::") == ["127.0.0.1"]
    assert v4("2001:0:4136:e378:8000:63bf:80ff:fffe") == ["65.54.227.120", "127.0.0.1"]
    assert v4("64:ff9b::7f00:1") == ["127.0.0.1"]
    assert "127.0.0.1" in v4("64:ff9b:1:7f00:0:100::") and "8.8.8.8" in v4("64:ff9b:1::808:808")
    assert v4("2606:4700:4700::1111") == []


def test_the_allow_list_still_opens_its_networks():
    assert address_allowed("127.0.0.1", LOOPBACK) and address_allowed("::ffff:127.0.0.1", LOOPBACK)
    # a tunnel to an allowed IPv4 address reaches the same place, so it is allowed too ...
    assert address_allowed("2002:7f00:1::", LOOPBACK) and address_allowed("64:ff9b::7f00:1", LOOPBACK)
    # ... and a tunnel to another private address is not
    assert not address_allowed("2002:7f00:2::", LOOPBACK) and not address_allowed("2002:a00:1::1", LOOPBACK)
    assert address_allowed("192.0.0.8", parse_networks("192.0.0.8/32"))
    assert address_allowed("fd00::5", parse_networks("fd00::/64")) and not address_allowed("fd00:1::5",
                                                                                          parse_networks("fd00::/64"))


def test_a_6to4_literal_is_refused_before_connecting():
    with pytest.raises(FetchError) as exc:
        fetch_image_bytes("http://[2002:7f00:1::]/cat.jpg", max_bytes=1000, timeout=2)
    assert (exc.value.code, exc.value.status) == ("url_not_allowed", 400)


# ---------------------------------------------------------------------------------------------- hosts and URLs
@pytest.mark.parametrize("url", [
    "http://[::1/x.jpg", "http://[::1]x/cat.jpg", "http://[vx.y]/cat.jpg", "http://exa mple.org/cat.jpg",
    "http://a\x01b.org/cat.jpg", "http://a..b.org/cat.jpg", "http://" + "a" * 64 + ".org/cat.jpg",
    "http://\ud800.org/cat.jpg", "http://example.org:0/cat.jpg",
])
def test_hosts_that_cannot_be_parsed_are_bad_urls(url):
    with pytest.raises(FetchError) as exc:
        check_url(url)
    assert (exc.value.code, exc.value.status) == ("bad_url", 400)


@pytest.mark.parametrize("url, host", [
    ("HTTPS://Example.org/a.jpg", "example.org"), ("http://例え.jp/a.jpg", "xn--r8jz45g.jp"),
    ("http://[2606:4700::1]:8080/a.jpg", "2606:4700::1"), ("http://my_host.example.org./a.jpg", "my_host.example.org."),
])
def test_good_hosts_pass(url, host):
    assert check_url(url)[1] == host


class _Redirects(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    targets = {"/to-bad-ipv6": "http://[::1/x.jpg", "/to-bad-name": "http://exa mple.org/x.jpg",
               "/to-utf8-path": "/caf\u00e9 cr\u00e8me.jpg".encode().decode("latin-1")}

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server's naming)
        target = self.targets.get(self.path)
        if target is not None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Redirects)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("path", ["/to-bad-ipv6", "/to-bad-name"])
def test_a_redirect_to_an_unparseable_host_is_a_bad_url(server, path):
    with pytest.raises(FetchError) as exc:
        fetch_image_bytes(server + path, max_bytes=1000, timeout=3, allow_networks=LOOPBACK)
    assert (exc.value.code, exc.value.status) == ("bad_url", 400)


def test_paths_are_sent_percent_encoded(server):
    got = fetch_image_bytes(server + "/a b/caf\u00e9.jpg?q=x y", max_bytes=1000, timeout=3, allow_networks=LOOPBACK)
    assert got == b"/a%20b/caf%C3%A9.jpg?q=x%20y"
    # a Location in UTF-8 (which http.client reads as Latin-1) is followed as the server meant it
    got = fetch_image_bytes(server + "/to-utf8-path", max_bytes=1000, timeout=3, allow_networks=LOOPBACK)
    assert got == b"/caf%C3%A9%20cr%C3%A8me.jpg"
