"""Hostile input to the API (issue 13): text that is not Unicode, JSON built to exhaust the parser, numbers in other
scripts, URLs whose host cannot be parsed, request paths and ids that would forge log lines, and a gunicorn control
socket shared with every other server of the user. Each is a 4xx JSON error (or a harmless answer), never a 500."""

import logging
import os
import socket
import time

import pytest

from marconi.api.params import MAX_JSON_BYTES, MAX_JSON_DEPTH

SURROGATE = b'"\\ud800"'  # the JSON escape of a lone surrogate: legal JSON, not text


def _post(client, path, raw: bytes):
    return client.post(path, data=raw, content_type="application/json")


def _error(resp, status=400, code="bad_request") -> str:
    body = resp.get_json()
    assert resp.status_code == status and body["status"] == status and body["code"] == code, (resp.status_code, body)
    return body["error"]


# ------------------------------------------------------------------------------------------ text that is not text
@pytest.mark.parametrize("path, raw, where", [
    ("/api/radio", b'{"seeds": [' + SURROGATE + b']}', "'seeds[0]'"),
    ("/api/radio", b'{"seeds": ["yes_small:1", "a' + SURROGATE[1:] + b']}', "'seeds[1]'"),
    ("/api/radio", b'{"seeds": ["yes_small:1"], ' + SURROGATE + b': 1}', "the request"),
    ("/api/images/search", b'{"text": "red ' + SURROGATE[1:] + b'}', "'text'"),
    ("/api/images/search", b'{"url": "http://' + SURROGATE[1:-1] + b'.example.org/cat.jpg"}', "'url'"),
    ("/api/images/search", b'{"url": "https://example.org/' + SURROGATE[1:-1] + b'.jpg"}', "'url'"),
])
def test_a_lone_surrogate_is_not_valid_unicode(client, path, raw, where):
    message = _error(_post(client, path, raw))
    assert message.startswith(f"{where} is not valid Unicode text") and "\\ud800" in message


@pytest.mark.parametrize("path", ["/api/songs?q=", "/api/words/similar?q=", "/api/images/search?q="])
def test_bytes_that_are_not_utf8_in_a_query_string_never_reach_the_database(client, path):
    """Percent-encoded bytes of a surrogate (or any bytes that are not UTF-8) decode to U+FFFD, which is text (the
    image search may answer 503 here: this database has no image model)."""
    resp = client.get(path + "%ED%A0%80love")
    assert resp.status_code in (200, 404, 503), resp.get_json()


# ----------------------------------------------------------------------------------- JSON built to hurt the parser
@pytest.mark.parametrize("path", ["/api/radio", "/api/images/search"])
@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"seeds": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                                 b'{"url": ' + b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1) + b"}"])
def test_deeply_nested_json_is_refused(client, path, raw):
    assert _error(_post(client, path, raw)).startswith("JSON nested too deeply")


@pytest.mark.parametrize("raw, words", [
    (b'{"seeds": ["yes_small:1"], "size": 1' + b"0" * 5000 + b"}", "limited to 100 digits"),
    (b'{"seeds": ["yes_small:1"], "size": 1e400}', "'size' must be an integer from 1 to 200"),
    (b'{"seeds": ["yes_small:1"], "variety": 1e400}', "'variety' must be a number from 0 to 1"),
    (b'{"seeds": ["yes_small:1"], "variety": NaN}', "'variety' must be a number from 0 to 1"),
    (b'{"seeds": ["yes_small:1"], "variety": -Infinity}', "'variety' must be a number from 0 to 1"),
])
def test_numbers_out_of_range_are_refused(client, raw, words):
    assert words in _error(_post(client, "/api/radio", raw))


def test_a_huge_json_body_is_refused_before_it_is_parsed(client):
    raw = b'{"seeds": [' + b"1," * (MAX_JSON_BYTES // 2) + b'1]}'
    assert "limited to" in _error(_post(client, "/api/radio", raw), 413, "too_large")


def test_a_huge_array_is_refused_by_its_length_not_item_by_item(client):
    """Half a million wrong items fit under the byte limit: pydantic reports each, and listing them without
    repeats took time quadratic in their number (11 s for 40,000; half an hour for these)."""
    raw = b'{"seeds": [' + b"1," * 500_000 + b'1]}'
    assert len(raw) < MAX_JSON_BYTES
    t0 = time.monotonic()
    assert _error(_post(client, "/api/radio", raw)).startswith("'seeds' must hold at most 50 items")
    assert time.monotonic() - t0 < 5


# ------------------------------------------------------------------------------------------- integers in ASCII only
@pytest.mark.parametrize("query", ["q=love&limit=١٢", "q=love&limit=1_0", "q=love&limit=%2010", "q=love&limit=12.0",
                                   "q=love&limit=%2B5", "q=love&offset=٣"])
def test_song_search_integers_are_ascii_digits(client, query):
    assert "must be an integer" in _error(client.get("/api/songs?" + query))


@pytest.mark.parametrize("path", ["/api/words/similar?q=dog&k=١٠", "/api/images/search?q=dog&k=1_0",
                                  "/api/images/1/similar?k=%EF%BC%95"])
def test_other_integers_are_ascii_digits(client, path):
    assert "'k' must be an integer" in _error(client.get(path))


def test_form_integers_are_ascii_digits(client):
    resp = client.post("/api/images/search", data={"k": "1_0"}, content_type="multipart/form-data")
    assert "'k' must be an integer" in _error(resp)


@pytest.mark.parametrize("path", ["/api/images/%D9%A1", "/api/images/%D9%A1/similar", "/images/%EF%BC%91",
                                  "/images/%D9%A1%D9%A2/thumbnail"])
def test_ids_in_paths_are_ascii_digits(client, path):
    """werkzeug's <int:…> matches \\d+, and int("١") is 1: such a path named image 1. It names nothing now."""
    assert _error(client.get(path), 404, "not_found").startswith("no such endpoint")


def test_ascii_ids_still_route(client):
    assert _error(client.get("/api/images/999999999"), 404, "not_found") == "no image with id 999999999"


# ------------------------------------------------------------------------------------------------ URLs of no host
@pytest.mark.parametrize("url", ["http://[::1/x.jpg", "http://[::1]x/cat.jpg", "http://exa mple.org/cat.jpg",
                                 "http://a\u0001b.org/cat.jpg", "http://a..b.org/cat.jpg",
                                 "http://" + "a" * 64 + ".org/cat.jpg", "http://example.org:0/cat.jpg"])
def test_unparseable_hosts_are_bad_urls(client, url):
    _error(client.post("/api/images/search", json={"url": url}), 400, "bad_url")


# ---------------------------------------------------------------------------------------------- log lines and ids
def _request_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "marconi"]


def test_a_path_with_cr_lf_writes_one_log_line(client, caplog):
    forged = "2026-01-01 00:00:00,000 INFO marconi: GET /admin 200 0.1ms rid=forged"
    with caplog.at_level(logging.INFO, logger="marconi"):
        client.get("/api/nothing%0d%0a" + forged.replace(" ", "%20") + "%E2%80%A8x")
    lines = _request_lines(caplog)
    assert len(lines) == 1 and "\n" not in lines[0] and "\r" not in lines[0] and "\u2028" not in lines[0]
    assert "/api/nothing\\r\\n2026-01-01" in lines[0] and "\\u2028x" in lines[0]


@pytest.mark.parametrize("given, kept", [
    ("abc-123_X.y", True), ("a" * 64, True),
    ("a" * 65, False), ("", False), ("has space", False), ("semi;colon", False), ("ü", False),
    ("x\u2028y", False), ("<script>", False),
])
def test_a_request_id_is_echoed_only_when_it_is_plain(client, caplog, given, kept):
    with caplog.at_level(logging.INFO, logger="marconi"):
        resp = client.get("/healthz", headers={"X-Request-ID": given})
    rid = resp.headers["X-Request-ID"]
    if kept:
        assert rid == given
    else:
        assert rid != given and len(rid) == 16 and rid.isalnum()
    assert _request_lines(caplog)[-1].endswith(f"rid={rid}")


def test_an_error_body_carries_the_checked_request_id(client):
    resp = client.get("/api/songs", headers={"X-Request-ID": "evil\tid"})
    assert resp.get_json()["request_id"] == resp.headers["X-Request-ID"] != "evil\tid"


# ------------------------------------------------------------------------------ gunicorn's shared control socket
def test_gunicorn_is_started_without_the_shared_control_socket(trained_url, base_config, tmp_path):
    """gunicorn (25.1+) opens $XDG_RUNTIME_DIR/gunicorn.ctl, else ~/.gunicorn/gunicorn.ctl: one path for every
    server of the user, so each new server took it over from the last (and removed it on stopping)."""
    from marconi.serving import background_gunicorn, gunicorn_args

    assert "--no-control-socket" in gunicorn_args("127.0.0.1", 5000)
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    # a socket another server left there: ours must neither replace nor remove it
    theirs = socket.socket(socket.AF_UNIX)
    theirs.bind(str(runtime / "gunicorn.ctl"))
    try:
        with background_gunicorn(trained_url[0], workers=1,
                                 env={"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
                                      "MARCONI_HOME": str(base_config.home)}) as base:
            import requests

            assert requests.get(base + "/healthz", timeout=10).ok
            assert os.stat(runtime / "gunicorn.ctl").st_ino == os.stat(theirs.getsockname()).st_ino
        assert (runtime / "gunicorn.ctl").exists()
        assert not (home / ".gunicorn").exists()
    finally:
        theirs.close()
