"""Web pages with the Flask test client: they render, carry their form controls and labels, stay small, and
load nothing from other hosts."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

PAGES = ["/", "/search", "/radio", "/status"]
PAGE_BUDGET_BYTES = 150_000  # HTML + every stylesheet, script and image it loads from this server
STATIC = Path(__file__).resolve().parents[2] / "marconi" / "web" / "static"
ALLOWED_ABSOLUTE = ("http://www.w3.org/2000/svg", "http://localhost/")


class Page(HTMLParser):
    """Collect the tags of a page: (tag, attrs) pairs, plus the ids and the for= targets of labels."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: (v if v is not None else "") for k, v in attrs}))

    def find(self, tag: str | None = None, **want) -> list[dict]:
        """Attributes of every tag named ``tag`` whose attributes include ``want`` (``_`` for ``-``)."""
        want = {k.replace("_", "-"): v for k, v in want.items()}
        return [a for t, a in self.tags if (tag is None or t == tag) and all(a.get(k) == v for k, v in want.items())]

    def one(self, tag: str | None = None, **want) -> dict:
        found = self.find(tag, **want)
        assert len(found) == 1, f"expected one <{tag} {want}>, found {len(found)}"
        return found[0]

    def resources(self) -> list[str]:
        """URLs the browser fetches on load: stylesheets, icons, scripts, images."""
        urls = []
        for tag, a in self.tags:
            if tag == "link" and a.get("rel") in ("stylesheet", "icon"):
                urls.append(a["href"])
            elif tag in ("script", "img") and a.get("src"):
                urls.append(a["src"])
        return urls


def get_page(client, path: str) -> tuple[str, Page]:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code, r.data[:300])
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    return html, Page(html)


def labelled(page: Page, control_id: str) -> bool:
    """True when the control has a <label for=…>, aria-label or aria-labelledby."""
    control = page.one(id=control_id)
    return bool(page.find("label", **{"for": control_id}) or control.get("aria-label")
                or control.get("aria-labelledby"))


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_with_shared_layout(client, path):
    html, page = get_page(client, path)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert page.one("html")["lang"] == "en"
    assert page.find("meta", name="viewport")
    assert page.one("main")["id"] == "main"
    assert page.find("a", href="#main"), "skip link"
    nav = [a["href"] for a in page.find("a") if a.get("href") in ("/search", "/radio", "/status")]
    assert sorted(set(nav)) == ["/radio", "/search", "/status"]
    current = page.find("a", aria_current="page")
    assert len(current) == 1 and current[0]["href"] == path
    assert len(page.find("h1")) == 1


def test_home_links_the_three_ways(client):
    html, page = get_page(client, "/")
    hrefs = {a.get("href") for a in page.find("a")}
    assert {"/search", "/radio", "/api/status"} <= hrefs
    assert "SELECT * FROM radio(" in html and "similar_images(" in html
    assert "curl -F image=@" in html


def test_search_page_controls(client):
    _, page = get_page(client, "/search")
    form = page.one("form", id="search-form")
    assert form["data-api"] == "/api/images/search" and form["enctype"] == "multipart/form-data"
    photo = page.one("input", id="photo")
    assert photo["type"] == "file" and photo["accept"] == "image/*" and photo["name"] == "image"
    camera = page.one("input", id="camera")
    assert camera["accept"] == "image/*" and camera["capture"] == "environment"
    for control in ("photo", "camera", "k"):
        assert labelled(page, control), control
    assert page.one(id="search-status")["aria-live"] == "polite"
    assert page.one(id="search-error")["role"] == "alert"
    assert page.one("meter", id="confidence-meter")
    assert int(form["data-max-bytes"]) == client.application.config["MAX_CONTENT_LENGTH"]


def test_radio_page_controls(client):
    _, page = get_page(client, "/radio")
    form = page.one("form", id="radio-form")
    assert form["data-songs-api"] == "/api/songs" and form["data-radio-api"] == "/api/radio"
    combo = page.one("input", id="seed-input")
    assert combo["role"] == "combobox" and combo["aria-autocomplete"] == "list"
    assert combo["aria-expanded"] == "false" and combo["aria-controls"] == "seed-options"
    assert page.one("ul", id="seed-options")["role"] == "listbox"
    for control in ("seed-input", "size", "max-per-artist", "seed-options"):
        assert labelled(page, control), control
    size = page.one("input", id="size")
    assert size["type"] == "number" and size["min"] == "1" and size["value"] == "25"
    assert page.one(id="radio-status")["aria-live"] == "polite"
    assert page.one(id="seed-live")["aria-live"] == "polite"
    assert page.one("button", id="make-radio")["type"] == "submit"
    # radio v2: the playlist is described by the live status line; skips are listed; notices and errors are announced
    assert page.one("ol", id="playlist")["aria-describedby"] == "radio-status"
    assert page.one(id="radio-notice")["role"] == "status" and page.one(id="radio-error")["role"] == "alert"
    assert "hidden" in page.one(id="exclude-box")
    assert page.one("ul", id="exclude-chips")["aria-labelledby"] == "exclude-label"
    assert int(form["data-max-exclude"]) == 200


def test_radio_page_offers_artists_tags_and_prompts_when_the_api_has_them(client):
    """The entry suggests artists and tags, and the mode control shows, exactly when /api/artists and /api/tags are
    served; the page never points at an endpoint that does not exist."""
    rules = {r.rule for r in client.application.url_map.iter_rules()}
    html, page = get_page(client, "/radio")
    form = page.one("form", id="radio-form")
    for name in ("artists", "tags"):
        assert form.get(f"data-{name}-api") == (f"/api/{name}" if f"/api/{name}" in rules else None)
    if "/api/artists" in rules:
        assert labelled(page, "mode")
        modes = [o for o in page.find("option") if o.get("value") in ("easy", "medium", "hard")]
        assert [o["value"] for o in modes] == ["easy", "medium", "hard"] and "selected" in modes[1]
        assert "Songs, artists, tags or a prompt" in html
        assert client.get("/api/artists?q=a&limit=3").status_code == 200
        assert client.get("/api/tags?q=a&limit=3").status_code == 200
    else:
        assert page.find(id="mode") == [] and "Seed songs" in html


def test_radio_page_endpoints_answer(client):
    songs = client.get("/api/songs?q=love&limit=10").get_json()
    assert songs["songs"], "the trained database has songs with 'love' in them"
    seed = next(s for s in songs["songs"] if s["has_vector"])
    radio = client.post("/api/radio", json={"seeds": [seed["key"]], "size": 5, "max_per_artist": None})
    assert radio.status_code == 200 and len(radio.get_json()["playlist"]) == 5


def test_status_page_shows_what_the_api_says(client):
    status = client.get("/api/status").get_json()
    html, page = get_page(client, "/status")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    for key, label in [("tracks", "Tracks"), ("playlists", "Playlists"), ("images", "Images")]:
        assert page.one(id=f"count-{key}")
        assert f"{label} {status['counts'][key]:,}" in text
    songs = status["serving"]["songs"]
    assert songs is not None
    assert songs["model"] in text and f"Dimensions {songs['dims']}" in text
    assert re.search(r"Database size \d+(\.\d)? (bytes|kB|MB|GB|TB)", text)
    if status["serving"]["images"] is None:
        assert "No model serving yet" in text


@pytest.mark.parametrize("path", PAGES)
def test_page_weight_under_budget(client, path):
    html, page = get_page(client, path)
    total = len(html.encode())
    for url in page.resources():
        assert url.startswith("/"), f"{path} loads {url} from elsewhere"
        r = client.get(url)
        assert r.status_code == 200, url
        total += len(r.data)
    assert total < PAGE_BUDGET_BYTES, f"{path} weighs {total} bytes"


def _absolute_urls(text: str) -> set[str]:
    found = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'<>)]*", text))
    found |= set(re.findall(r"https?://[^\s\"'<>)]+", text))
    return {u for u in found if not u.startswith(ALLOWED_ABSOLUTE)}


@pytest.mark.parametrize("path", PAGES)
def test_no_external_urls_in_pages(client, path):
    html, page = get_page(client, path)
    assert _absolute_urls(html) == set()
    for url in page.resources():
        assert _absolute_urls(client.get(url).get_data(as_text=True)) == set(), url
    assert "@import" not in html


def test_no_external_urls_or_frameworks_in_static_files():
    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    assert {p.suffix for p in files} <= {".css", ".js", ".svg"}
    for p in files:
        text = p.read_text()
        assert _absolute_urls(text) == set(), p.name
        assert "@import" not in text and "sourceMappingURL" not in text, p.name
    assert sum(p.stat().st_size for p in files) < 100_000


def test_static_assets_are_versioned_and_cached(client):
    _, page = get_page(client, "/radio")
    scripts = [u for u in page.resources() if u.endswith(".js") or ".js?" in u]
    assert len(scripts) == 2 and all("?v=" in u for u in scripts)
    r = client.get(scripts[0])
    assert r.status_code == 200 and "javascript" in r.mimetype
    assert "immutable" in r.headers["Cache-Control"] and "max-age=31536000" in r.headers["Cache-Control"]
    assert "no-cache" in client.get("/radio").headers["Cache-Control"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: cannot syntax-check the scripts")
def test_scripts_parse():
    for js in sorted(STATIC.glob("*.js")):
        result = subprocess.run(["node", "--check", str(js)], capture_output=True, text=True)
        assert result.returncode == 0, f"{js.name}: {result.stderr}"


def test_radio_page_export_buttons(client):
    """The radio page offers XSPF, JSPF and M3U8 downloads (shown once there is a playlist); no Spotify button
    without the Spotify settings (tests/api/test_spotify_save.py checks it appears with them)."""
    _, page = get_page(client, "/radio")
    bar = page.one(id="radio-export")
    assert "hidden" in bar and bar["role"] == "group" and bar["aria-labelledby"] == "export-label"
    formats = [b["data-format"] for b in page.find("button") if b.get("data-format")]
    assert formats == ["xspf", "jspf", "m3u8"]
    assert page.find(id="save-spotify") == []


def test_percent_never_rounds_up_to_100():
    """A share just under 1 shows with one decimal (0.9956 is 99.6%, not 100%); 100% is exactly 1 (search.js's
    twin is checked in the browser tests)."""
    from marconi.web import percent

    shown = [percent(v) for v in (None, 0.003, 0.42, 0.9949, 0.995, 0.9956, 0.9995, 0.99999, 1.0, 1.2)]
    assert shown == ["0%", "<1%", "42%", "99%", "99.5%", "99.6%", ">99.9%", ">99.9%", "100%", "100%"]


def test_without_paths_keeps_file_names_and_urls():
    from marconi.api.health import without_paths

    run = {"encoder": {"weights": {"loaded_from": {"file": "/srv/venv/lib/python3.11/site-packages/m/lite0.pth",
                                                   "package": "efficientnet==0.1"},
                                   "source": "https://github.com/x/y/releases/w.pth"}},
           "note": "read /data/images/cat.jpg", "dims": [1, 2], "root": "/"}
    assert without_paths(run) == {
        "encoder": {"weights": {"loaded_from": {"file": "lite0.pth", "package": "efficientnet==0.1"},
                                "source": "https://github.com/x/y/releases/w.pth"}},
        "note": "read cat.jpg", "dims": [1, 2], "root": "/"}


def test_status_shows_parameters_in_words_without_paths(client, monkeypatch):
    """Nested run parameters show as names and values (never a Python dict or a datetime repr), and neither the page
    nor /api/status shows where the server keeps its files; what is stored is not changed."""
    from datetime import UTC, datetime

    import marconi.api.health as health

    real = health.status_report

    def with_an_image_run(conn):
        report = real(conn)
        report["serving"]["images"] = {
            "id": 7, "kind": "images", "model": "efficientnet-lite0", "dims": 64, "n_vectors": 90,
            "status": "serving", "started_at": datetime(2026, 1, 2, 3, 4, tzinfo=UTC).isoformat(), "finished_at": None,
            "params": {"encoder": {"name": "efficientnet-lite0", "compiled": False, "input_size": [224, 224],
                                   "weights": {"loaded_from": {"file": "/opt/venv/lib/python3.11/site-packages/"
                                                                       "efficientnet/lite0.pth"}}},
                       "pca_dims": 64},
            "metrics": {"calibration": {"threshold": 0.712345678, "n": 1200}}}
        return report

    monkeypatch.setattr(health, "status_report", with_an_image_run)
    api = client.get("/api/status").get_data(as_text=True)
    assert "site-packages" not in api and "/opt/" not in api and "lite0.pth" in api
    html, _ = get_page(client, "/status")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    for repr_ in ("{'", "{&#39;", "datetime.", "PosixPath", "site-packages", "/opt/", "True", "False"):
        assert repr_ not in html, repr_
    assert "loaded from file lite0.pth" in text and "input size 224, 224" in text and "compiled no" in text
    assert "threshold 0.7123" in text and "n 1,200" in text and "2026-01-02 03:04 UTC" in text


def test_unknown_addresses_get_a_page_in_a_browser_and_json_under_api(client):
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = client.get("/no/such/page", headers=html)
    assert page.status_code == 404 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "There is no page at this address" in text and "openapi" not in text.split("<footer")[0]
    api = client.get("/api/no/such/thing", headers=html)
    assert api.status_code == 404 and api.mimetype == "application/json"
    assert api.get_json()["error"].startswith("no such endpoint")
