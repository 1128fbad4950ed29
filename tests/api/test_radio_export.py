"""A radio as a playlist file: the pure XSPF/JSPF/M3U8 writers, and content negotiation on POST /api/radio."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from marconi.playlist_formats import (
    FORMATS,
    filename,
    marconi_url,
    spotify_id,
    to_jspf,
    to_m3u8,
    to_xspf,
    track_location,
)

BASE = "http://marconi.test"
NS = {"x": "http://xspf.org/ns/0/"}
SPOTIFY_KEY = "spotify:track:7pk3EpFtmsOdj8iUhjmeCM"
HOSTILE = 'Bad </title><x a="1"/> & "quotes" \'n\' <!-- --> ]]>'
ANSWER = {
    "seeds": [{"key": "yes_small:61", "title": "Halo", "artist": "Beyoncé"}],
    "ignored_seeds": [], "model_run": 3, "variety": 0.25, "size": 3, "max_per_artist": 2,
    "playlist": [
        {"key": SPOTIFY_KEY, "title": "Otra Vez (feat. J Balvin)", "artist": "Zion & Lennox, J Balvin",
         "distance": 1.5, "score": 0.9, "spotify_url": "https://open.spotify.com/track/7pk3EpFtmsOdj8iUhjmeCM"},
        {"key": "yes_small:5", "title": HOSTILE, "artist": "Line\r\nBreak\u2028Artist", "distance": 2.0,
         "score": 0.8, "spotify_url": None},
        {"key": "yes_small:7", "title": "Ünïcödé ☂", "artist": "", "distance": 2.5, "score": 0.7,
         "spotify_url": None},
    ],
}
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# --------------------------------------------------------------------------------------------- pure writers
def test_track_keys_and_locations():
    """Only spotify:track:<22 base62> keys are Spotify tracks; the rest get a stable Marconi URL."""
    assert spotify_id(SPOTIFY_KEY) == "7pk3EpFtmsOdj8iUhjmeCM"
    assert spotify_id("yes_small:61") is None and spotify_id("spotify:track:short") is None
    assert spotify_id("spotify:track:7pk3EpFtmsOdj8iUhjmeCM\n") is None
    assert track_location(BASE, SPOTIFY_KEY) == "https://open.spotify.com/track/7pk3EpFtmsOdj8iUhjmeCM"
    assert track_location(BASE, "yes_small:61") == marconi_url(BASE, "yes_small:61")
    assert marconi_url(BASE, "yes_small:61") == f"{BASE}/radio?seed=yes_small:61"
    assert marconi_url(BASE + "/", "a b&c") == f"{BASE}/radio?seed=a%20b%26c"


def test_xspf_is_valid_xspf_1_with_everything_escaped():
    body = to_xspf(ANSWER, BASE, WHEN)
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(body)
    assert root.tag == "{http://xspf.org/ns/0/}playlist" and root.get("version") == "1"
    children = [c.tag.split("}")[1] for c in root]
    assert children == ["title", "creator", "annotation", "info", "date", *["meta"] * 6, "trackList"]
    assert root.findtext("x:title", namespaces=NS) == "Radio from Halo by Beyoncé"
    assert root.findtext("x:date", namespaces=NS) == "2026-01-02T03:04:05Z"
    assert root.findtext("x:info", namespaces=NS) == (f"{BASE}/radio?seed=yes_small%3A61&size=3&max_per_artist=2"
                                                      "&variety=0.25")
    meta = {m.get("rel").rsplit("#", 1)[1]: json.loads(m.text) for m in root.findall("x:meta", NS)}
    assert meta["model_run"] == 3 and meta["seeds"] == ["yes_small:61"] and meta["variety"] == 0.25
    tracks = root.findall("x:trackList/x:track", NS)
    assert len(tracks) == 3
    first, hostile, bare = tracks
    assert [c.tag.split("}")[1] for c in first] == ["location", "identifier", "title", "creator", "info", "meta",
                                                    "meta", "meta"]
    assert first.findtext("x:location", namespaces=NS) == "https://open.spotify.com/track/7pk3EpFtmsOdj8iUhjmeCM"
    assert first.findtext("x:identifier", namespaces=NS) == SPOTIFY_KEY
    assert first.findtext("x:creator", namespaces=NS) == "Zion & Lennox, J Balvin"
    assert hostile.find("x:location", NS) is None  # nothing playable: a player resolves it by creator and title
    assert hostile.findtext("x:identifier", namespaces=NS) == f"{BASE}/radio?seed=yes_small:5"
    assert hostile.findtext("x:title", namespaces=NS) == HOSTILE  # round-trips: escaped, not interpreted
    assert hostile.findtext("x:creator", namespaces=NS) == "Line Break Artist"
    assert bare.findtext("x:title", namespaces=NS) == "Ünïcödé ☂" and bare.find("x:creator", NS) is None
    assert b"<x a=" not in body


def test_jspf_follows_listenbrainz_shape():
    doc = json.loads(to_jspf(ANSWER, BASE, WHEN))
    pl = doc["playlist"]
    assert pl["title"] == "Radio from Halo by Beyoncé" and pl["creator"] == "Marconi"
    assert pl["date"] == "2026-01-02T03:04:05Z"
    assert pl["extension"][f"{BASE}/api/radio"]["model_run"] == 3
    assert [t["title"] for t in pl["track"]] == ["Otra Vez (feat. J Balvin)", HOSTILE, "Ünïcödé ☂"]
    first, hostile, _ = pl["track"]
    assert first["identifier"] == [SPOTIFY_KEY]
    assert first["location"] == ["https://open.spotify.com/track/7pk3EpFtmsOdj8iUhjmeCM"]
    assert first["creator"] == "Zion & Lennox, J Balvin"
    assert first["extension"][f"{BASE}/api/radio"] == {"key": SPOTIFY_KEY, "score": 0.9, "distance": 1.5}
    assert hostile["identifier"] == [f"{BASE}/radio?seed=yes_small:5"] and "location" not in hostile


def test_m3u8_has_one_extinf_and_one_location_per_song():
    text = to_m3u8(ANSWER, BASE).decode("utf-8")
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[1] == "#PLAYLIST:Radio from Halo by Beyoncé"
    assert lines[2:] == [
        "#EXTINF:-1,Zion & Lennox, J Balvin - Otra Vez (feat. J Balvin)",
        "https://open.spotify.com/track/7pk3EpFtmsOdj8iUhjmeCM",
        f"#EXTINF:-1,Line Break Artist - {HOSTILE}",
        f"{BASE}/radio?seed=yes_small:5",
        "#EXTINF:-1,Ünïcödé ☂",
        f"{BASE}/radio?seed=yes_small:7",
    ]
    assert text.endswith("\n") and "\r" not in text


def test_filenames_are_plain_ascii():
    assert filename(ANSWER, "xspf") == "marconi-radio-halo-beyonce.xspf"
    assert filename({"seeds": [{"key": "k", "title": "☂ ☂", "artist": ""}]}, "m3u8") == "marconi-radio.m3u8"
    assert filename({"seeds": [{"key": "k", "title": "../../etc/passwd", "artist": ""}]}, "jspf") == \
        "marconi-radio-etc-passwd.jspf"


# ------------------------------------------------------------------------------------------------ over HTTP
def _seed(client):
    return next(s["key"] for s in client.get("/api/songs?q=halo").get_json()["songs"] if s["has_vector"])


@pytest.fixture()
def body(client):
    return {"seeds": [_seed(client)], "size": 6}


@pytest.mark.parametrize("how", ["format", "accept"])
@pytest.mark.parametrize("name", ["xspf", "jspf", "m3u8"])
def test_same_request_answers_each_format(client, body, name, how):
    """?format= or the Accept header picks the format; the songs are the JSON answer's, in its order."""
    fmt = FORMATS[name]
    keys = [p["key"] for p in client.post("/api/radio", json=body).get_json()["playlist"]]
    if how == "format":
        r = client.post(f"/api/radio?format={name}", json=body)
    else:
        r = client.post("/api/radio", json=body, headers={"Accept": fmt.media_type})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == fmt.media_type and r.mimetype_params["charset"] == "utf-8"
    assert r.headers["Content-Disposition"].startswith("attachment; filename=marconi-radio-halo")
    assert r.headers["Content-Disposition"].endswith(f".{name}")
    assert "Accept" in r.headers["Vary"]
    if name == "xspf":
        got = [t.findtext("x:meta[@rel='http://localhost/api/radio#key']", namespaces=NS)
               for t in ET.fromstring(r.data).findall("x:trackList/x:track", NS)]
        assert got == keys
    elif name == "jspf":
        tracks = r.get_json(force=True)["playlist"]["track"]
        assert [t["identifier"][0] for t in tracks] == [f"http://localhost/radio?seed={k}" for k in keys]
    else:
        lines = r.get_data(as_text=True).splitlines()
        assert lines[0] == "#EXTM3U" and lines[3::2] == [f"http://localhost/radio?seed={k}" for k in keys]


def test_format_parameter_wins_over_accept(client, body):
    r = client.post("/api/radio?format=M3U8", json=body, headers={"Accept": "application/xspf+xml"})
    assert r.mimetype == "audio/x-mpegurl"
    r = client.post("/api/radio?format=json", json=body, headers={"Accept": "application/xspf+xml"})
    assert r.is_json and "Content-Disposition" not in r.headers


@pytest.mark.parametrize("accept, expected", [
    (None, "application/json"), ("*/*", "application/json"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json"),
    ("audio/*", "audio/x-mpegurl"), ("audio/mpegurl", "audio/x-mpegurl"),
    ("application/json;q=0.5, application/jspf+json", "application/jspf+json"),
])
def test_accept_header_negotiation(client, body, accept, expected):
    r = client.post("/api/radio", json=body, headers={"Accept": accept} if accept else {})
    assert r.status_code == 200 and r.mimetype == expected


def test_unservable_accept_is_406_listing_the_formats(client, body):
    r = client.post("/api/radio", json=body, headers={"Accept": "text/csv, application/pdf"})
    assert r.status_code == 406 and r.is_json
    err = r.get_json()
    assert err["code"] == "not_acceptable" and "text/csv" in err["error"]
    assert [f["format"] for f in err["formats"]] == ["json", "xspf", "jspf", "m3u8"]
    assert {f["media_type"] for f in err["formats"]} >= {"application/xspf+xml", "audio/x-mpegurl"}


@pytest.mark.parametrize("value", ["pls", "", "xspf%00", "%D9%A1", "x" * 500])
def test_unknown_format_is_400(client, body, value):
    r = client.post(f"/api/radio?format={value}", json=body)
    assert r.status_code == 400 and r.is_json
    assert r.get_json()["code"] == "bad_format" and "xspf" in r.get_json()["error"]


def test_bad_radio_request_stays_json_whatever_the_format(client):
    r = client.post("/api/radio?format=xspf", json={"seeds": []})
    assert r.status_code == 400 and r.is_json
    r = client.post("/api/radio", json={"seeds": ["nope:0"]}, headers={"Accept": "audio/x-mpegurl"})
    assert r.status_code == 404 and r.is_json and r.get_json()["unknown"] == ["nope:0"]
