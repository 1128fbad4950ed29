"""POST /api/images/search with JSON {"url": ...}: real HTTP to a local image server, every refusal and fault."""

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest

from marconi.api.openapi import response_schema
from marconi.fetch import fetch_image_bytes
from marconi.url_rules import FetchError, address_allowed, check_url, parse_networks

LIMIT = 200_000
TIMEOUT = 1.5


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: dict = {}
    hits: list = []

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", ctype="image/jpeg", headers=None, length=True):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.hits.append((self.path, dict(self.headers)))
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            return self._send(404, b"not found", "text/plain")
        route(self)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client hangs up on purpose in several tests (too large, too slow)


@pytest.fixture(scope="module")
def image_server(image_sets):
    photo = next(image_sets[1].joinpath("Motorbikes").glob("*.jpg")).read_bytes()
    port_box = {}

    def drip(h):
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(photo)))
        h.end_headers()
        try:
            for i in range(0, len(photo), 100):
                h.wfile.write(photo[i:i + 100])
                h.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def endless(h):
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.end_headers()  # no Content-Length: the body runs until the connection closes
        h.close_connection = True
        try:
            for _ in range(LIMIT // 1000 + 50):
                h.wfile.write(b"\xff" * 1000)
        except OSError:
            pass

    def cut_short(h):
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(photo)))
        h.end_headers()
        h.wfile.write(photo[: len(photo) // 3])
        h.close_connection = True

    def slow_headers(h):
        time.sleep(TIMEOUT + 1)
        try:
            h._send(200, photo)
        except OSError:  # the client gave up long ago, as it should
            pass

    _Handler.routes = {
        "/moto.jpg": lambda h: h._send(200, photo),
        "/octet": lambda h: h._send(200, photo, "application/octet-stream"),
        "/redirect": lambda h: h._send(302, b"", headers={"Location": "/moto.jpg"}),
        "/loop": lambda h: h._send(302, b"", headers={"Location": "/loop"}),
        "/to-metadata": lambda h: h._send(302, b"", headers={"Location": "http://169.254.169.254/latest/"}),
        "/to-other-loopback": lambda h: h._send(
            302, b"", headers={"Location": f"http://127.0.0.2:{port_box['port']}/moto.jpg"}),
        "/page.html": lambda h: h._send(200, b"<html>a page about motorbikes</html>", "text/html; charset=utf-8"),
        "/big": lambda h: h._send(200, b"\xff" * (LIMIT + 1)),
        "/endless": endless,
        "/drip": drip,
        "/slow-headers": slow_headers,
        "/cut-short": cut_short,
        "/gzip": lambda h: h._send(200, gzip.compress(photo), headers={"Content-Encoding": "gzip"}),
        "/text.jpg": lambda h: h._send(200, b"this is not a jpeg at all"),
        "/gone": lambda h: h._send(410, b"gone", "text/plain"),
    }
    _Handler.hits = []
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    port_box["port"] = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", photo
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def url_client(images_engine, trained_url, base_config):
    """An app that may fetch from 127.0.0.1 only (as an operator would allow an intranet image host)."""
    from marconi import create_app

    app = create_app({"database_url": trained_url[0], "home": str(base_config.home),
                      "url_fetch_allow_networks": "127.0.0.1/32", "url_fetch_timeout": TIMEOUT,
                      "max_upload_bytes": LIMIT})
    app.testing = True
    return app.test_client()


def _search(client, body):
    return client.post("/api/images/search", json=body)


def test_url_search_answers_like_an_upload(url_client, image_server):
    base, photo = image_server
    by_url = _search(url_client, {"url": f"{base}/moto.jpg", "k": 5})
    assert by_url.status_code == 200, by_url.get_json()
    body = by_url.get_json()
    jsonschema.validate(body, response_schema("/api/images/search", "post", 200))
    assert body["query"]["url"] == f"{base}/moto.jpg"
    assert len(body["matches"]) == 5 and body["matches"][0]["label"] == "Motorbikes"
    import io

    upload = url_client.post("/api/images/search?k=5", data={"image": (io.BytesIO(photo), "m.jpg")},
                             content_type="multipart/form-data").get_json()
    assert [m["id"] for m in upload["matches"]] == [m["id"] for m in body["matches"]]
    assert upload["confidence"] == body["confidence"]
    path, headers = _Handler.hits[-1]
    assert path == "/moto.jpg" and headers.get("Accept-Encoding") == "identity"


def test_redirects_are_followed_and_rechecked(url_client, image_server):
    base, _ = image_server
    ok = _search(url_client, {"url": f"{base}/redirect"})
    assert ok.status_code == 200 and ok.get_json()["matches"][0]["label"] == "Motorbikes"
    octet = _search(url_client, {"url": f"{base}/octet"})
    assert octet.status_code == 200
    loop = _search(url_client, {"url": f"{base}/loop"})
    assert loop.status_code == 422 and loop.get_json()["code"] == "url_redirects"
    for target in ("/to-metadata", "/to-other-loopback"):
        r = _search(url_client, {"url": base + target})
        assert r.status_code == 400 and r.get_json()["code"] == "url_not_allowed", r.get_json()
    assert not any(p.startswith("/latest") for p, _ in _Handler.hits)


@pytest.mark.parametrize("path, status, code", [
    ("/page.html", 400, "not_an_image"),
    ("/text.jpg", 400, "not_an_image"),
    ("/gone", 422, "url_status"),
    ("/nowhere.jpg", 422, "url_status"),
    ("/big", 413, "too_large"),
    ("/endless", 413, "too_large"),
    ("/cut-short", 422, "url_unreachable"),
    ("/gzip", 422, "url_status"),
])
def test_faults_are_4xx_json(url_client, image_server, path, status, code):
    r = _search(url_client, {"url": image_server[0] + path})
    assert r.status_code == status, r.get_json()
    assert r.get_json()["code"] == code and r.get_json()["error"]
    jsonschema.validate(r.get_json(), response_schema("/api/images/search", "post", status))


@pytest.mark.parametrize("path", ["/drip", "/slow-headers"])
def test_one_deadline_covers_the_whole_fetch(url_client, image_server, path):
    t0 = time.monotonic()
    r = _search(url_client, {"url": image_server[0] + path})
    elapsed = time.monotonic() - t0
    assert r.status_code == 422 and r.get_json()["code"] == "url_timeout", r.get_json()
    assert elapsed < TIMEOUT + 1.0  # a correctness bound (the deadline is enforced), not a speed measurement


def test_connection_refused_is_422(url_client):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = _search(url_client, {"url": f"http://127.0.0.1:{port}/x.jpg"})
    assert r.status_code == 422 and r.get_json()["code"] == "url_unreachable"


@pytest.mark.parametrize("body, code", [
    ({"url": "file:///etc/passwd"}, "bad_url"),
    ({"url": "ftp://example.org/cat.jpg"}, "bad_url"),
    ({"url": "http://user:secret@example.org/cat.jpg"}, "bad_url"),
    ({"url": "http://example.org:99999/cat.jpg"}, "bad_url"),
    ({"url": "/relative/cat.jpg"}, "bad_url"),
    ({"url": ""}, "bad_url"),
    ({"url": 42}, "bad_url"),
    ({"url": "https://example.org/" + "a" * 3000}, "bad_url"),
])
def test_bad_urls_are_400(url_client, body, code):
    r = _search(url_client, body)
    assert r.status_code == 400 and r.get_json()["code"] == code, r.get_json()


def test_bad_json_bodies_are_400(url_client):
    assert _search(url_client, ["http://example.org/cat.jpg"]).status_code == 400
    assert _search(url_client, {"k": 5}).status_code == 400
    assert _search(url_client, {"url": "http://example.org/a.jpg", "k": 0}).status_code == 400
    assert _search(url_client, {"url": "http://example.org/a.jpg", "k": "5"}).status_code == 400
    assert _search(url_client, {"url": "http://example.org/a.jpg", "colour": "red"}).status_code == 400
    broken = url_client.post("/api/images/search", data=b'{"url": ', content_type="application/json")
    assert broken.status_code == 400 and broken.get_json()["error"]


def test_default_server_refuses_private_addresses(client, images_engine, image_server):
    r = _search(client, {"url": image_server[0] + "/moto.jpg"})
    assert r.status_code == 400 and r.get_json()["code"] == "url_not_allowed"
    assert "private or reserved" in r.get_json()["error"]


def test_fetching_can_be_switched_off(images_engine, trained_url, base_config, image_server):
    from marconi import create_app

    app = create_app({"database_url": trained_url[0], "home": str(base_config.home), "url_fetch": False})
    r = app.test_client().post("/api/images/search", json={"url": image_server[0] + "/moto.jpg"})
    assert r.status_code == 403 and r.get_json()["code"] == "url_fetch_disabled"


@pytest.mark.parametrize("ip, allowed", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("::ffff:8.8.8.8", True),
])
def test_address_rules(ip, allowed):
    assert address_allowed(ip) is allowed


def test_allowed_networks_open_only_themselves():
    nets = parse_networks("10.1.0.0/16, 127.0.0.1/32")
    assert address_allowed("10.1.9.9", nets) and address_allowed("127.0.0.1", nets)
    assert not address_allowed("10.2.0.1", nets) and not address_allowed("127.0.0.2", nets)
    with pytest.raises(ValueError):
        parse_networks("10.1.0.0/99")


def test_names_resolving_to_loopback_are_refused_before_connecting():
    with pytest.raises(FetchError) as exc:
        fetch_image_bytes("http://localhost:9/cat.jpg", max_bytes=1000, timeout=2)
    assert exc.value.code == "url_not_allowed" and exc.value.status == 400
    assert check_url("HTTPS://Example.org/a.jpg") == ("https", "example.org", 443)


def test_served_by_gunicorn_a_slow_fetch_does_not_hold_up_other_requests(images_engine, trained_url, base_config,
                                                                         image_server):
    """`marconi serve` runs threaded workers: with one worker, /healthz answers while a slow URL fetch is pending."""
    import requests

    from marconi.serving import background_gunicorn

    env = {"MARCONI_HOME": str(base_config.home), "MARCONI_URL_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
           "MARCONI_URL_FETCH_TIMEOUT": "20"}
    with background_gunicorn(trained_url[0], workers=1, env=env) as base:
        done = {}

        def slow():
            r = requests.post(base + "/api/images/search", json={"url": image_server[0] + "/slow-headers"},
                              timeout=30)
            done["slow"] = (time.monotonic(), r.status_code)

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)  # let the slow request reach the worker
        health = requests.get(base + "/healthz", timeout=30)
        health_at = time.monotonic()
        t.join(30)
        assert health.ok
        assert done["slow"][1] == 200  # the slow image arrived in the end and was searched
        assert health_at < done["slow"][0]  # answered while the slow fetch was still pending


def test_a_slow_name_lookup_counts_against_the_deadline(monkeypatch):
    import socket as socket_module

    import marconi.fetch as fetch

    real = socket_module.getaddrinfo

    def slow_lookup(*args, **kwargs):
        time.sleep(3)
        return real(*args, **kwargs)

    monkeypatch.setattr(fetch.socket, "getaddrinfo", slow_lookup)
    t0 = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch_image_bytes("http://images.example.org/cat.jpg", max_bytes=1000, timeout=0.5)
    assert exc.value.code == "url_timeout" and exc.value.status == 422
    assert time.monotonic() - t0 < 2.5  # returned at the deadline, not after the 3 s lookup
