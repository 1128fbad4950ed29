"""The radio answer says what each ``exclude`` entry named (song, artist or nothing), so a page restored from a
shared link shows "Halo by Beyonce", not ``yes_small:61``."""

import sqlalchemy as sa


def _two_songs(client) -> list[dict]:
    """Two songs with vectors by different artists, from the catalogue search."""
    chosen: list[dict] = []
    for s in client.get("/api/songs?q=love&limit=100").get_json()["songs"]:
        if s["has_vector"] and all(s["artist"] != c["artist"] for c in chosen):
            chosen.append(s)
        if len(chosen) == 2:
            return chosen
    raise AssertionError("the trained test database has no two songs with 'love' by different artists")


def test_excluded_songs_come_back_with_title_and_artist_and_unknown_ones_say_so(client, trained_engine):
    seed, skipped = _two_songs(client)
    shouted = skipped["artist"].upper()  # artists match in any case, as radio() leaves them out
    exclude = [skipped["key"], " no-such-key:1 ", shouted, "Nobody At All Zzq"]
    r = client.post("/api/radio", json={"seeds": [seed["key"]], "size": 10, "exclude": exclude})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["exclude"] == [skipped["key"], "no-such-key:1", shouted, "Nobody At All Zzq"]
    with trained_engine.connect() as conn:
        spelled = conn.execute(sa.text("SELECT min(artist) FROM tracks WHERE lower(btrim(artist)) = lower(:a)"),
                               {"a": skipped["artist"]}).scalar()
    assert body["excluded"] == [
        {"value": skipped["key"], "kind": "song", "title": skipped["title"], "artist": skipped["artist"]},
        {"value": "no-such-key:1", "kind": "unknown", "title": None, "artist": None},
        {"value": shouted, "kind": "artist", "title": None, "artist": spelled},
        {"value": "Nobody At All Zzq", "kind": "unknown", "title": None, "artist": None},
    ]
    assert skipped["artist"].lower() not in [p["artist"].lower() for p in body["playlist"]]


def test_no_exclude_is_an_empty_list_and_an_only_unknown_exclude_still_plays(client):
    seed, _ = _two_songs(client)
    plain = client.post("/api/radio", json={"seeds": [seed["key"]], "size": 5}).get_json()
    assert plain["excluded"] == [] and plain["exclude"] == []
    steered = client.post("/api/radio", json={"seeds": [seed["key"]], "size": 5, "exclude": ["gone:404"]})
    assert steered.status_code == 200
    assert steered.get_json()["excluded"] == [{"value": "gone:404", "kind": "unknown", "title": None, "artist": None}]
    assert [p["key"] for p in steered.get_json()["playlist"]] == [p["key"] for p in plain["playlist"]]


def test_the_openapi_document_describes_excluded(client):
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    radio = next(s for name, s in schemas.items() if name.split(".")[-1] == "Radio")
    assert "excluded" in radio["required"]
    ref = next(s for name, s in schemas.items() if name.split(".")[-1] == "ExcludedRef")
    assert ref["properties"]["kind"]["enum"] == ["song", "artist", "unknown"]
