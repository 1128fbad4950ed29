"""Optional protections (marconi.protections) on the real app and a real PostgreSQL: a rate limit on photo uploads
and URL fetches (429 in the API's error shape, with Retry-After), an API key for them (401 without it, 200 with it),
CORS off by default and on for configured origins (preflights too), and one clear line for a bad setting."""

from __future__ import annotations

import io
import shutil

import pytest
from click.testing import CliRunner

from marconi import create_app
from marconi.config import Config, ConfigError, from_env
from marconi.db import make_engine
from marconi.protections import EXPENSIVE_ROUTES, expensive_endpoints

KEY = "k3y-for-the-protections-test-0123456789"
ORIGIN = "https://app.example.org"


def _app(url: str, base_config: Config, **settings):
    app = create_app({"database_url": url, "home": str(base_config.home), **settings})
    app.testing = True
    return app


def _upload(client, path: str = "/api/images/search", photo: bytes | None = None, **kw):
    """POST a photo (or, with none, a form without one: the view answers 400, but the request counts)."""
    data = {"image": (io.BytesIO(photo), "q.jpg")} if photo is not None else {"k": "3"}
    return client.post(path, data=data, content_type="multipart/form-data", **kw)


@pytest.fixture(scope="module")
def small_collection(new_database, base_config, data_dir, tmp_path_factory):
    """A fresh database holding 12 Caltech photos of two classes, encoded with EfficientNet-Lite0 on the CPU; and a
    held-out photo to search with: (url, photo bytes)."""
    from marconi.image_search.build import encode_images
    from marconi.importers.images import import_images

    root = tmp_path_factory.mktemp("protections") / "caltech101"
    for cls in ("dalmatian", "sunflower"):
        (root / cls).mkdir(parents=True)
        for f in sorted((data_dir / "images" / "caltech101" / cls).glob("*.jpg"))[:6]:
            shutil.copy(f, root / cls / f.name)
    held_out = sorted((data_dir / "images" / "caltech101" / "sunflower").glob("*.jpg"))[6]
    url = new_database()
    eng = make_engine(Config(), url=url)
    import_images(eng, root, progress=False)
    encode_images(eng, base_config.with_overrides(device="cpu", encoder="efficientnet-lite0"), progress=False)
    eng.dispose()
    return url, held_out.read_bytes()


def test_the_protected_endpoints_are_the_upload_and_fetch_routes(db_url, base_config):
    app = _app(db_url, base_config)
    endpoints = expensive_endpoints(app)
    assert len(endpoints) == len(EXPENSIVE_ROUTES) == 2
    rules = {(m, r.rule) for r in app.url_map.iter_rules() if r.endpoint in endpoints for m in r.methods}
    assert ("POST", "/api/images/search") in rules and ("POST", "/api/images/tags") in rules
    assert ("GET", "/api/images/search") not in rules  # word searches by GET stay open


# ------------------------------------------------------------------------------------------------ rate limits
def test_uploads_past_the_limit_get_429_json_with_retry_after(db_url, base_config):
    client = _app(db_url, base_config, rate_limit_uploads="3/minute").test_client()
    answers = [_upload(client), _upload(client, "/api/images/tags"), _upload(client)]
    assert [r.status_code for r in answers] == [400, 400, 400]  # counted, though the view refused them
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0"]

    refused = _upload(client, "/api/images/tags")  # one budget for searches and tags
    assert refused.status_code == 429 and refused.is_json
    body = refused.get_json()
    assert body["status"] == 429 and body["code"] == "too_many_requests" and body["request_id"]
    assert "3/minute" in body["error"] and "try again" in body["error"]
    assert 45 <= int(refused.headers["Retry-After"]) <= 60  # a moving window: the first of the 3 leaves it then

    assert _upload(client, environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 400  # another address
    other = client.get("/api/songs?q=x")  # everything else is not limited
    assert other.status_code == 200 and "X-RateLimit-Limit" not in other.headers


def test_there_is_no_limit_by_default(db_url, base_config):
    client = _app(db_url, base_config).test_client()
    answers = [_upload(client) for _ in range(8)]
    assert {r.status_code for r in answers} == {400}  # neither 429 nor 401: no limit and no key by default
    assert all("X-RateLimit-Limit" not in r.headers for r in answers)


# ----------------------------------------------------------------------------------------------------- API key
def test_an_api_key_is_required_for_uploads_when_set(small_collection, base_config):
    url, photo = small_collection
    client = _app(url, base_config, api_key=KEY).test_client()

    missing = _upload(client, photo=photo)
    assert missing.status_code == 401 and missing.get_json()["code"] == "api_key_required"
    assert "X-API-Key" in missing.get_json()["error"] and missing.headers["WWW-Authenticate"].startswith("Bearer")
    for wrong in ("nope", KEY[:-1], KEY + "x", KEY.upper()):
        answer = _upload(client, "/api/images/tags", photo=photo, headers={"X-API-Key": wrong})
        assert answer.status_code == 401 and answer.get_json()["code"] == "bad_api_key"
        assert KEY not in answer.get_data(as_text=True)
    assert _upload(client, photo=photo, headers={"Authorization": f"Basic {KEY}"}).status_code == 401

    found = _upload(client, photo=photo, headers={"X-API-Key": KEY})
    assert found.status_code == 200 and found.get_json()["matches"][0]["label"] == "sunflower"
    tagged = _upload(client, "/api/images/tags", photo=photo, headers={"Authorization": f"Bearer {KEY}"})
    assert tagged.status_code == 200 and tagged.get_json()["tags"]

    image_id = found.get_json()["matches"][0]["id"]  # reading stays open
    assert client.get(f"/api/images/{image_id}").status_code == 200


# -------------------------------------------------------------------------------------------------------- CORS
def test_cors_is_off_by_default(db_url, base_config):
    client = _app(db_url, base_config).test_client()
    answer = client.get("/api/songs?q=x", headers={"Origin": ORIGIN})
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers
    preflight = client.options("/api/images/search", headers={"Origin": ORIGIN,
                                                               "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_answers_configured_origins_only(db_url, base_config):
    client = _app(db_url, base_config, cors_origins=f"{ORIGIN}, http://[::1]:8080", api_key=KEY).test_client()
    answer = client.get("/api/songs?q=x", headers={"Origin": ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in answer.headers["Vary"]
    assert "X-Request-ID" in answer.headers["Access-Control-Expose-Headers"]
    assert client.get("/api/songs", headers={"Origin": "http://[::1]:8080"}).headers[
        "Access-Control-Allow-Origin"] == "http://[::1]:8080"
    for stranger in ("https://evil.example", ORIGIN + ".evil.example", "http://app.example.org"):
        assert "Access-Control-Allow-Origin" not in client.get("/api/songs", headers={"Origin": stranger}).headers
    assert "Access-Control-Allow-Origin" not in client.get("/", headers={"Origin": ORIGIN}).headers  # pages: no

    preflight = client.options("/api/images/search", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "X-API-Key, Content-Type"})
    assert preflight.status_code == 200  # a preflight carries no key, and is not refused for it
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "x-api-key" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert preflight.headers["Access-Control-Max-Age"] == "600"

    refused = _upload(client, headers={"Origin": ORIGIN})  # the page on that origin can read why
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == ORIGIN


# ------------------------------------------------------------------------------------------------ bad settings
@pytest.mark.parametrize("var, raw, expected", [
    ("MARCONI_RATE_LIMIT_UPLOADS", "lots", "a rate such as '30/minute'"),
    ("MARCONI_RATE_LIMIT_UPLOADS", "30 per fortnight", "a rate such as '30/minute'"),
    ("MARCONI_RATE_LIMIT_STORAGE", "ftp://cache:21", "a storage URI such as memory://"),
    ("MARCONI_CORS_ORIGINS", "app.example.org", "a comma-separated list of origins"),
    ("MARCONI_CORS_ORIGINS", "https://app.example.org/path", "a comma-separated list of origins"),
])
def test_bad_protection_settings_get_one_clear_line(var, raw, expected):
    with pytest.raises(ConfigError) as err:
        from_env({var: raw})
    assert str(err.value).startswith(f"{var} must be {expected}")
    assert str(err.value).endswith(f"got {raw!r}") and "\n" not in str(err.value)


def test_a_bad_api_key_setting_is_not_echoed():
    with pytest.raises(ConfigError) as err:
        from_env({"MARCONI_API_KEY": "zqxj-short-1"})
    message = str(err.value)
    assert message.startswith("MARCONI_API_KEY must be at least 16 visible ASCII characters")
    assert message.endswith("got a value of 12 characters") and "zqxj" not in message


def test_the_command_line_says_a_bad_setting_in_one_line():
    from marconi.cli import main

    result = CliRunner().invoke(main, ["db", "status"], env={"MARCONI_CORS_ORIGINS": "*.example.org"})
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == ["Error: MARCONI_CORS_ORIGINS must be a comma-separated list of origins such as "
                     "'https://app.example.org' (or *), got '*.example.org'"]


def test_a_storage_without_its_library_is_named(db_url, base_config):
    pytest.importorskip("limits")
    try:
        import pymemcache  # noqa: F401
        pytest.skip("pymemcache is installed: memcached:// would be usable")
    except ImportError:
        pass
    with pytest.raises(ConfigError, match=r"^MARCONI_RATE_LIMIT_STORAGE cannot be used: .*memory:// needs nothing"):
        _app(db_url, base_config, rate_limit_uploads="3/minute", rate_limit_storage="memcached://127.0.0.1:11211")
