"""Hostile input to the API (issue 13): text that is not Unicode, JSON built to exhaust the parser, numbers in other
scripts, URLs whose host cannot be parsed, request paths and ids that would forge log lines, and a gunicorn control
socket shared with every other server of the user. Each is a 4xx JSON error (or a harmless answer), never a 500."""


import pytest

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

