"""The API contract: real responses validate against /api/openapi.json (generated from the views' models), and a
schemathesis run finds no 5xx."""

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from marconi.api.openapi import response_schema


def _check(resp, path, method="get"):
    jsonschema.validate(resp.get_json(), response_schema(path, method, resp.status_code))


def _seed(client):
    return next(s["key"] for s in client.get("/api/songs?q=love").get_json()["songs"] if s["has_vector"])


def test_openapi_document_is_served_and_valid(client):
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    for path in ("/api/songs", "/api/radio", "/api/images/search", "/api/status", "/healthz", "/readyz"):
        assert path in doc["paths"]


def test_real_responses_match_the_schema(client):
    _check(client.get("/healthz"), "/healthz")
    _check(client.get("/readyz"), "/readyz")
    _check(client.get("/api/status"), "/api/status")
    _check(client.get("/api/songs?q=love&limit=3"), "/api/songs")
    _check(client.get("/api/songs?q="), "/api/songs")
    _check(client.post("/api/radio", json={"seeds": [_seed(client)], "size": 5, "max_per_artist": 1}),
           "/api/radio", "post")
    _check(client.post("/api/radio", json={"seeds": ["nope:0"]}), "/api/radio", "post")
    _check(client.post("/api/radio", json={"seeds": []}), "/api/radio", "post")
    _check(client.get("/api/images/123456789"), "/api/images/{image_id}")


def test_radio_v2_responses_match_the_schema(client):
    """Radio v2's answers and refusals: exclude, an ignored seed, artists, tags, prompts, suggestions, formats."""
    seed = _seed(client)
    artist = client.get("/api/artists?q=the&limit=3")
    _check(artist, "/api/artists")
    _check(client.get("/api/tags?q=ro&limit=3"), "/api/tags")
    _check(client.get("/api/tags?q="), "/api/tags")
    _check(client.post("/api/radio", json={"seeds": [seed, "nope:0"], "size": 5, "exclude": ["nope:1", "Nobody"]}),
           "/api/radio", "post")
    name = artist.get_json()["artists"][0]["name"]
    _check(client.post("/api/radio", json={"artists": [name], "tags": ["rock"], "mode": "hard", "size": 5}),
           "/api/radio", "post")
    _check(client.post("/api/radio", json={"prompt": f"artist:({name}) #mode easy", "size": 5}), "/api/radio", "post")
    unknown = client.post("/api/radio", json={"artists": [name + "zzq"]})
    assert unknown.status_code == 404 and unknown.get_json()["closest"]
    _check(unknown, "/api/radio", "post")
    bad = client.post("/api/radio", json={"prompt": "artist:(Madonna"})
    assert bad.status_code == 400 and isinstance(bad.get_json()["position"], int)
    _check(bad, "/api/radio", "post")
    _check(client.post("/api/radio?format=wav", json={"seeds": [seed]}), "/api/radio", "post")
    refused = client.post("/api/radio", json={"seeds": [seed]}, headers={"Accept": "image/png"})
    assert refused.status_code == 406
    _check(refused, "/api/radio", "post")
    documented = client.get("/api/openapi.json").get_json()["paths"]["/api/radio"]["post"]["responses"]["200"]
    for fmt, media_type in (("xspf", "application/xspf+xml"), ("jspf", "application/jspf+json"),
                            ("m3u8", "audio/x-mpegurl")):
        answer = client.post(f"/api/radio?format={fmt}", json={"seeds": [seed], "size": 3})
        assert answer.status_code == 200 and answer.mimetype == media_type and media_type in documented["content"]


def test_undocumented_status_is_caught(app):
    with pytest.raises(KeyError):
        response_schema("/api/songs", "get", 201)
    assert response_schema("/api/songs", "get", 500)["required"] == ["error", "status"]  # every route may answer 500


def test_fuzz_no_server_errors(app):
    """Schemathesis generates requests for every operation from the document; none may get a 5xx."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    seen = []
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            response = case.call()
            seen.append(response.status_code)
            documented_503 = response.status_code == 503 and "serving yet" in response.text
            assert response.status_code < 500 or documented_503, f"{case.method} {case.path}: {response.text[:300]}"
            if response.status_code >= 400 and response.status_code != 304:
                assert response.json()["error"]

        run()
    assert len(seen) > 50 and any(s >= 400 for s in seen) and any(s == 200 for s in seen)
