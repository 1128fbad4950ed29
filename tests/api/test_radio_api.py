"""The songs and radio HTTP API on a trained database: answers, pagination, and JSON errors (never a 500)."""

from contextlib import contextmanager

import pytest
import sqlalchemy as sa


def test_song_search_is_case_and_accent_insensitive(client, trained_engine):
    with trained_engine.begin() as conn:
        # an accented artist, to prove the folding works both ways
        conn.execute(sa.text("INSERT INTO tracks (key, title, artist) VALUES ('test:accent', 'Crème Brûlée Song', "
                             "'Beyoncé Knowles') ON CONFLICT DO NOTHING"))
    try:
        plain = client.get("/api/songs?q=creme brulee").get_json()
        accented = client.get("/api/songs?q=BEYONCÉ knowles").get_json()
        assert [s["key"] for s in plain["songs"]] == ["test:accent"]
        assert "test:accent" in [s["key"] for s in accented["songs"]]
    finally:
        with trained_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM tracks WHERE key = 'test:accent'"))


def test_song_search_ranks_exact_title_first_and_paginates(client):
    first = client.get("/api/songs?q=halo&limit=1").get_json()
    assert first["songs"][0]["title"].lower() == "halo"
    total = client.get("/api/songs?q=love&limit=1").get_json()["total"]
    assert total >= 20
    seen = []
    offset = 0
    while offset is not None:
        page = client.get(f"/api/songs?q=love&limit=7&offset={offset}").get_json()
        seen += [s["key"] for s in page["songs"]]
        offset = page["next_offset"]
    assert len(seen) == len(set(seen)) == total


def test_song_search_multiword_needs_all_words(client):
    body = client.get("/api/songs?q=lady gaga").get_json()
    assert body["total"] > 0
    assert all("gaga" in (s["artist"] + s["title"]).lower() for s in body["songs"])


@pytest.mark.parametrize("query, status", [
    ("", 400), ("?q=", 400), ("?q=a&limit=0", 400), ("?q=a&limit=101", 400), ("?q=a&limit=x", 400),
    ("?q=a&offset=-1", 400), ("?q=" + "x" * 201, 400), ("?q=%25_%5C", 200),
])
def test_song_search_bad_parameters(client, query, status):
    r = client.get("/api/songs" + query)
    assert r.status_code == status
    assert r.is_json
    if status == 400:
        assert "error" in r.get_json()


def _seed(client, q):
    return next(s["key"] for s in client.get(f"/api/songs?q={q}").get_json()["songs"] if s["has_vector"])


def test_radio_returns_ordered_playlist_without_seeds(client):
    seeds = [_seed(client, "halo"), _seed(client, "bad romance")]
    r = client.post("/api/radio", json={"seeds": seeds, "size": 30})
    assert r.status_code == 200
    body = r.get_json()
    keys = [p["key"] for p in body["playlist"]]
    assert len(keys) == 30 == len(set(keys))
    assert not set(keys) & set(seeds)
    titles = {s["title"] for s in body["seeds"]}
    assert all(p["reason"].split(" with ", 1)[-1].split(" to ", 1)[-1] in titles for p in body["playlist"])
    scores = [p["score"] for p in body["playlist"]]
    assert scores == sorted(scores, reverse=True)
    assert [s["key"] for s in body["seeds"]] == seeds


def test_radio_artist_cap(client):
    seed = _seed(client, "halo")
    body = client.post("/api/radio", json={"seeds": [seed], "size": 40, "max_per_artist": 1}).get_json()
    artists = [p["artist"].lower() for p in body["playlist"]]
    assert len(artists) == len(set(artists))


def test_radio_variety_over_http(client):
    seed = _seed(client, "halo")
    plain = client.post("/api/radio", json={"seeds": [seed], "size": 20}).get_json()
    varied = client.post("/api/radio", json={"seeds": [seed], "size": 20, "variety": 0.75,
                                             "max_per_artist": 2}).get_json()
    assert plain["variety"] == 0 and varied["variety"] == 0.75
    scores = [p["score"] for p in varied["playlist"]]
    assert len(scores) == 20 and scores == sorted(scores, reverse=True)
    assert [p["key"] for p in varied["playlist"]] != [p["key"] for p in plain["playlist"]]
    artists = [p["artist"].lower() for p in varied["playlist"]]
    assert max(artists.count(a) for a in artists) <= 2
    bad = client.post("/api/radio", json={"seeds": [seed], "variety": 2})
    assert bad.status_code == 400 and "variety" in bad.get_json()["error"]


@pytest.mark.parametrize("body", [
    {"size": 25}, {"size": 10, "max_per_artist": 1}, {"size": 15, "variety": 0.5}, {"size": 50, "variety": 0.25,
                                                                                     "max_per_artist": 2}])
def test_api_and_sql_radio_give_the_same_playlist(client, trained_engine, body):
    """Radio is defined once: the API answers with the SQL function users call, on the same run."""
    import sqlalchemy as sa

    for seeds in ([_seed(client, "halo")], [_seed(client, "halo"), _seed(client, "bad romance")]):
        api = client.post("/api/radio", json={"seeds": seeds, **body}).get_json()
        with trained_engine.connect() as conn:
            sql = conn.execute(sa.text("SELECT key, score, run_id FROM radio(:s, :n, :m, :v)"),
                               {"s": seeds, "n": body["size"], "m": body.get("max_per_artist"),
                                "v": body.get("variety", 0.0)}).all()
        assert [p["key"] for p in api["playlist"]] == [r.key for r in sql]
        assert [p["score"] for p in api["playlist"]] == [r.score for r in sql]
        assert {r.run_id for r in sql} == {api["model_run"]}


def test_radio_with_unknown_seeds_plays_the_known_one_and_names_the_rest(client):
    """A shared link whose song is gone still works and says which seeds were ignored."""
    seed = _seed(client, "halo")
    r = client.post("/api/radio", json={"seeds": [seed, "yes_small:999999", "nope"], "size": 5})
    assert r.status_code == 200
    body = r.get_json()
    assert [s["key"] for s in body["seeds"]] == [seed] and body["ignored_seeds"] == ["yes_small:999999", "nope"]
    assert body["size"] == 5


def test_radio_with_only_unknown_seeds_is_404_naming_them(client):
    r = client.post("/api/radio", json={"seeds": ["yes_small:999999", "nope"]})
    assert r.status_code == 404
    body = r.get_json()
    assert body["unknown"] == ["yes_small:999999", "nope"]
    assert "yes_small:999999" in body["error"]


def test_radio_exclude_over_http(client):
    seed = _seed(client, "halo")
    plain = client.post("/api/radio", json={"seeds": [seed], "size": 10}).get_json()["playlist"]
    steered = client.post("/api/radio", json={"seeds": [seed], "size": 10,
                                              "exclude": [plain[0]["key"], plain[1]["artist"].lower()]}).get_json()
    assert steered["exclude"] == [plain[0]["key"], plain[1]["artist"].lower()]
    assert plain[0]["key"] not in [p["key"] for p in steered["playlist"]]
    assert plain[1]["artist"] not in [p["artist"] for p in steered["playlist"]]
    bad = client.post("/api/radio", json={"seeds": [seed], "exclude": "x"})
    assert bad.status_code == 400 and "exclude" in bad.get_json()["error"]


@pytest.mark.parametrize("kwargs", [
    {"data": ""}, {"data": "not json", "content_type": "application/json"}, {"json": []}, {"json": {}},
    {"json": {"seeds": []}}, {"json": {"seeds": ["a"], "size": 0}}, {"json": {"seeds": ["a"], "size": 10_000}},
    {"json": {"seeds": [None]}}, {"json": {"seeds": ["a"], "max_per_artist": -1}},
    {"json": {"seeds": ["a"], "max_per_artist": 2**31}}, {"json": {"seeds": ["a"], "size": 2**63}},
])
def test_radio_bad_bodies_are_400_json(client, kwargs):
    r = client.post("/api/radio", **kwargs)
    assert r.status_code == 400
    assert r.get_json()["error"]


def test_tiny_variety_is_not_a_500(client):
    """Found by the API fuzzer: a denormal variety underflowed in SQL."""
    r = client.post("/api/radio", json={"seeds": [_seed(client, "halo")], "size": 5, "variety": 5e-324})
    assert r.status_code == 200 and r.get_json()["variety"] == 0


def test_wrong_method_and_unknown_route_are_json(client):
    assert client.get("/api/radio").status_code == 405
    assert client.get("/api/radio").get_json()["error"]
    assert client.get("/api/nothing").status_code == 404


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["songs_model"]
    status = client.get("/api/status").get_json()
    assert status["counts"]["tracks"] > 3000 and status["serving"]["songs"]["status"] == "serving"
    assert status["database_bytes"] > 0


def test_request_id_is_echoed(client):
    r = client.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert r.headers["X-Request-ID"] == "abc123"


def test_app_refuses_outdated_schema(new_database):
    from marconi import create_app
    from marconi.config import Config
    from marconi.db import make_engine, migrate

    url = new_database(migrated=False)
    eng = make_engine(Config(), url=url)
    migrate.upgrade(eng, "0001")
    eng.dispose()
    with pytest.raises(migrate.SchemaOutdated, match="marconi db upgrade"):
        create_app({"database_url": url})


def test_migrations_downgrade_and_upgrade_again(new_database):
    from marconi.config import Config
    from marconi.db import make_engine, migrate

    eng = make_engine(Config(), url=new_database(migrated=False))
    migrate.upgrade(eng)
    migrate.downgrade(eng, "base")
    with eng.connect() as conn:
        assert not conn.execute(sa.text("SELECT to_regclass('tracks')")).scalar()
    migrate.upgrade(eng)
    current, head = migrate.revisions(eng)
    assert current == head
    eng.dispose()


@contextmanager
def _statements_sent(app):
    """Yield the list of SQL statements the app sends while the block runs."""
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = app.extensions["marconi.engine"]
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def test_a_radio_request_is_one_statement(client, app):
    """Seeds, candidates, scores and the run label come from one statement (so from one model run)."""
    seed = _seed(client, "halo")
    with _statements_sent(app) as statements:
        r = client.post("/api/radio", json={"seeds": [seed], "size": 10, "variety": 0.25, "exclude": ["x:1", "Drake"]})
    assert r.status_code == 200 and r.get_json()["size"] == 10
    assert len(statements) == 1, statements


# ------------------------------------------------------------------------------------ artist, tag and prompt radio
def test_artist_radio_answers_with_artists_tags_and_mode(client):
    r = client.post("/api/radio", json={"artists": ["madonna"], "tags": ["80S"], "size": 5, "mode": "easy"})
    body = r.get_json()
    assert r.status_code == 200, body
    assert body["artists"] == [{"name": "Madonna", "songs": body["artists"][0]["songs"]}]
    assert body["tags"][0]["tag"] == "80s" and body["tags"][0]["songs"] > 0 and body["mode"] == "easy"
    assert body["seeds"] == [] and body["size"] == 5 and all(p["reason"] for p in body["playlist"])


def test_prompt_radio_and_its_mode(client):
    body = client.post("/api/radio", json={"prompt": "artist:(Madonna) #mode hard", "size": 5}).get_json()
    assert body["mode"] == "hard" and body["artists"][0]["name"] == "Madonna" and body["size"] == 5


@pytest.mark.parametrize("body, status, code", [
    ({}, 400, "bad_request"),
    ({"artists": []}, 400, "bad_request"),
    ({"artists": [""]}, 400, "bad_request"),
    ({"artists": "Madonna"}, 400, "bad_request"),
    ({"tags": ["rock"], "mode": "insane"}, 400, "bad_request"),
    ({"prompt": ""}, 400, "bad_request"),
    ({"prompt": "artist:(Madonna"}, 400, "bad_prompt"),
    ({"prompt": "tag:" + "(" * 5000}, 400, "bad_prompt"),
    ({"prompt": " ".join(f"tag:t{i}" for i in range(1000))}, 400, "too_many_names"),
    ({"artists": ["Madona"]}, 404, "unknown_artist"),
    ({"tags": ["rokc"]}, 404, "unknown_tag"),
    ({"artists": ["\u0301\u0301"]}, 404, "unknown_artist"),
])
def test_artist_tag_and_prompt_errors_are_json(client, body, status, code):
    r = client.post("/api/radio", json=body)
    got = r.get_json()
    assert r.status_code == status and got["code"] == code, got
    if code == "bad_prompt":
        assert got["position"] >= 1 and f"at character {got['position']}" in got["error"]
    if code == "unknown_artist" and body["artists"] == ["Madona"]:
        assert got["closest"][0] == "Madonna" and "closest: Madonna" in got["error"]


def test_artist_and_tag_suggestions(client):
    artists = client.get("/api/artists?q=MAD&limit=3").get_json()
    assert artists["q"] == "MAD" and artists["artists"][0] == {"name": "Madonna",
                                                                "songs": artists["artists"][0]["songs"]}
    tags = client.get("/api/tags?q=ro&limit=3").get_json()
    assert tags["q"] == "ro" and len(tags["tags"]) == 3 and tags["tags"][0]["tag"] == "rock"
    assert tags["tags"][0]["songs"] > 1000
    for url in ("/api/artists", "/api/tags?q=", "/api/artists?q=a&limit=0", "/api/tags?q=a&limit=x"):
        assert client.get(url).status_code == 400
    assert client.get("/api/artists?q=%25_%5C").get_json()["artists"] == []


def test_an_artist_radio_is_one_statement(client, app):
    with _statements_sent(app) as statements:
        for body in ({"prompt": "artist:(Madonna) tag:rock #mode hard", "size": 10}, {"artists": ["Madona"]}):
            client.post("/api/radio", json=body)
    assert len(statements) == 2, statements
