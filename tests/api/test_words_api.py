"""GET /api/words/similar on a tiny app with only the words blueprint (no database): answers and JSON errors."""

from __future__ import annotations

import pytest
from flask import Flask

from marconi.api import errors
from marconi.api.words import bp
from marconi.text.words import WordVectors, WordVectorsUnavailable


@pytest.fixture(scope="module")
def client():
    """Return a test client of a Flask app serving only the words blueprint, with Marconi's error handler."""
    try:
        WordVectors.load()
    except WordVectorsUnavailable as exc:
        pytest.skip(str(exc))
    app = Flask(__name__)
    app.register_blueprint(bp)
    errors.register(app)
    return app.test_client()


def test_similar_words(client):
    r = client.get("/api/words/similar?q=dog&k=5")
    assert r.status_code == 200
    body = r.get_json()
    assert body["q"] == "dog" and body["used"] == ["dog"]
    assert len(body["words"]) == 5
    words = [w["word"] for w in body["words"]]
    assert "dog" not in words and {"dogs", "cat", "puppy"} & set(words)
    sims = [w["similarity"] for w in body["words"]]
    assert sims == sorted(sims, reverse=True)


def test_default_k_and_case(client):
    body = client.get("/api/words/similar?q=%20Leopard%20").get_json()
    assert body["q"] == "Leopard" and len(body["words"]) == 10


def test_phrase_uses_its_known_words(client):
    body = client.get("/api/words/similar?q=a+vehicle+with+two+wheels&k=3").get_json()
    assert body["used"] == ["vehicle", "two", "wheels"]
    assert len(body["words"]) == 3


def test_unknown_word_is_404(client):
    r = client.get("/api/words/similar?q=qwxzzyv")
    assert r.status_code == 404
    body = r.get_json()
    assert body["code"] == "unknown_word" and "qwxzzyv" in body["error"]


@pytest.mark.parametrize("query, field", [
    ("", "q"), ("?q=", "q"), ("?q=%20%20", "q"), ("?q=" + "x" * 51, "q"), ("?q=dog%00", "q"),
    ("?q=dog&k=0", "k"), ("?q=dog&k=51", "k"), ("?q=dog&k=ten", "k"),
])
def test_bad_parameters_are_400(client, query, field):
    r = client.get("/api/words/similar" + query)
    assert r.status_code == 400
    body = r.get_json()
    assert body["status"] == 400 and f"'{field}'" in body["error"]
