"""Artist and tag radio (migration 0011): tags imported, artist/tag vectors swapped with the run, radios from
artists, tags and prompts, unknown names, modes, one statement per request, downgrade."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import sqlalchemy as sa

from marconi.api.params import validate
from marconi.db import make_engine, migrate
from marconi.errors import MarconiError
from marconi.importers.playlists import import_playlists
from marconi.recommenders.request import RadioRequest
from marconi.recommenders.song2vec import radio


def _ask(conn, **body) -> dict:
    return radio(conn, validate(RadioRequest, body), "cube")


def _big_artists(conn, n: int) -> list[str]:
    return conn.execute(sa.text("SELECT name FROM artist_vectors WHERE songs >= 5 ORDER BY songs DESC, name "
                                "LIMIT :n"), {"n": n}).scalars().all()


def test_tags_are_imported_from_tags_txt(trained_engine):
    with trained_engine.connect() as conn:
        tags = conn.execute(sa.text("SELECT count(*) FROM tags")).scalar()
        links = conn.execute(sa.text("SELECT count(*) FROM track_tags")).scalar()
        rock = conn.execute(sa.text("SELECT count(*) FROM track_tags tt JOIN tags g ON g.id = tt.tag_id "
                                    "WHERE g.name = 'rock'")).scalar()
        none = conn.execute(sa.text("SELECT count(*) FROM tags WHERE name = 'NONE'")).scalar()
        reader = conn.execute(sa.text("SELECT has_table_privilege('marconi_reader', 'track_tags', 'SELECT')")).scalar()
    assert tags > 200 and links > 10_000 and rock > 1000 and none == 0 and reader


def test_tag_import_is_idempotent_and_all_or_nothing(engine, emptied, tmp_path, trained_url):
    split = trained_url[1]
    import_playlists(engine, split, "yes", progress=False)
    count = "SELECT (SELECT count(*) FROM tags), (SELECT count(*) FROM track_tags)"
    with engine.connect() as conn:
        first = tuple(conn.execute(sa.text(count)).one())
    import_playlists(engine, split, "yes", progress=False)
    with engine.connect() as conn:
        assert tuple(conn.execute(sa.text(count)).one()) == first
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("song_hash.txt", "train.txt", "tag_hash.txt"):
        (bad / name).write_bytes((split / name).read_bytes())
    lines = (split / "tags.txt").read_text().splitlines()
    (bad / "tags.txt").write_text("\n".join(lines[:5] + ["1 99999"] + lines[6:]) + "\n")
    with pytest.raises(MarconiError, match="tag id '99999'"):
        import_playlists(engine, bad, "yes", source="other", progress=False)
    with engine.connect() as conn:
        assert tuple(conn.execute(sa.text(count)).one()) == first
        assert conn.execute(sa.text("SELECT count(*) FROM tracks WHERE key LIKE 'other:%'")).scalar() == 0


def test_artist_and_tag_vectors_belong_to_the_serving_run(trained_engine):
    with trained_engine.connect() as conn:
        serving = conn.execute(sa.text("SELECT id FROM model_runs WHERE kind = 'songs' AND status = 'serving'")
                               ).scalar()
        for table in ("artist_vectors", "tag_vectors"):
            runs_seen = conn.execute(sa.text(f"SELECT array_agg(DISTINCT run_id) FROM {table}")).scalar()
            assert runs_seen == [serving], table
            assert conn.execute(sa.text(f"SELECT to_regclass('{table}_staging')")).scalar() is None
        madonna = conn.execute(sa.text("SELECT name, songs FROM artist_vectors WHERE artist = 'madonna'")).one()
    assert madonna.name == "Madonna" and madonna.songs >= 3


def test_artist_radio_stays_near_the_artist(trained_engine):
    """Its top songs share tags with the artist's own songs more than random songs do."""
    with trained_engine.connect() as conn:
        tags = {}
        for key, tag in conn.execute(sa.text("SELECT t.key, tt.tag_id FROM track_tags tt JOIN tracks t "
                                             "ON t.id = tt.track_id")):
            tags.setdefault(key, set()).add(tag)
        all_keys = conn.execute(sa.text("SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id")
                                ).scalars().all()
        radio_share, random_share = [], []
        rng = random.Random(3)
        for name in _big_artists(conn, 10):
            own = conn.execute(sa.text("SELECT key FROM tracks WHERE marconi_fold(btrim(artist)) = marconi_fold(:a)"),
                               {"a": name}).scalars().all()
            own_tags = Counter(t for k in own for t in tags.get(k, ()))
            top_tags = {t for t, _ in own_tags.most_common(5)}
            answer = _ask(conn, artists=[name.upper()], size=10)
            assert answer["artists"] == [{"name": name, "songs": answer["artists"][0]["songs"]}]
            reasons = {p["reason"] for p in answer["playlist"]}
            assert all(r.startswith(("by ", "close to ", "often played with ")) for r in reasons), reasons
            radio_share.append(sum(bool(tags.get(p["key"], set()) & top_tags) for p in answer["playlist"]) / 10)
            random_share.append(sum(bool(tags.get(k, set()) & top_tags) for k in rng.sample(all_keys, 10)) / 10)
    assert sum(radio_share) > sum(random_share) + 1.0, (radio_share, random_share)


def test_tag_radio_plays_songs_with_the_tag_and_says_so(trained_engine):
    with trained_engine.connect() as conn:
        answer = _ask(conn, tags=["ROCK "], size=20)
        share = conn.execute(sa.text("SELECT avg((EXISTS (SELECT 1 FROM track_tags tt JOIN tags g ON g.id = tt.tag_id "
                                     "JOIN tracks t ON t.id = tt.track_id WHERE g.name = 'rock' AND t.key = k))::int) "
                                     "FROM unnest(CAST(:k AS text[])) k"),
                             {"k": [p["key"] for p in answer["playlist"]]}).scalar()
    assert answer["tags"][0]["tag"] == "rock" and answer["size"] == 20
    assert share > 0.5
    assert any(p["reason"] == "tag: rock" for p in answer["playlist"])


def test_prompt_radio_combines_artist_tag_and_mode(trained_engine):
    with trained_engine.connect() as conn:
        answer = _ask(conn, prompt="artist:(madonna) tag:(80s) #mode easy", size=10, max_per_artist=2,
                      exclude=["yes_small:1"])
    assert answer["mode"] == "easy" and answer["artists"][0]["name"] == "Madonna" and answer["tags"][0]["tag"] == "80s"
    assert max(Counter(p["artist"].lower() for p in answer["playlist"]).values()) <= 2
    assert "yes_small:1" not in {p["key"] for p in answer["playlist"]}


@pytest.mark.parametrize("body, code, closest", [
    ({"artists": ["Madona"]}, "unknown_artist", "Madonna"),
    ({"prompt": "tag:(rokc)"}, "unknown_tag", "rock"),
])
def test_unknown_names_are_404_with_the_closest(trained_engine, body, code, closest):
    with trained_engine.connect() as conn, pytest.raises(MarconiError) as info:
        _ask(conn, **body)
    err = info.value.to_dict()
    assert err["status"] == 404 and err["code"] == code and err["closest"][0] == closest
    assert f"closest: {closest}" in err["error"]


def _mode_stats(conn, mode: str, names: list[str]) -> tuple[float, int]:
    """(share of songs by the seed artist, different songs across all the radios)."""
    own, closeness, seen = [], [], set()
    for name in names:
        rows = conn.execute(sa.text(
            "SELECT r.key, r.artist, (SELECT cube_distance(sv.qvec, av.qvec) FROM song_vectors sv JOIN tracks t "
            "ON t.id = sv.track_id, artist_vectors av WHERE t.key = r.key AND av.name = :a) AS d "
            "FROM radio(artists => ARRAY[:a], n => 20, mode => :m, exact => true) r"), {"a": name, "m": mode}).all()
        own += [r.artist == name for r in rows]
        closeness += [r.d for r in rows]
        seen |= {r.key for r in rows}
    return sum(own) / len(own), len(seen)


def test_modes_differ_measurably(trained_engine):
    """Easy plays more of the artist's own songs than medium, hard none; hard's radios use more different songs."""
    with trained_engine.connect() as conn:
        names = _big_artists(conn, 15)
        easy, medium, hard = (_mode_stats(conn, m, names) for m in ("easy", "medium", "hard"))
    assert easy[0] > medium[0] >= hard[0] and easy[0] > 0.1, (easy, medium, hard)
    assert hard[1] > medium[1], (easy, medium, hard)


def test_migration_0011_downgrades_and_upgrades(new_database):
    eng = make_engine_for(new_database())
    migrate.downgrade(eng, "0010")
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('artist_vectors')")).scalar() is None
        assert conn.execute(sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'radio'")).scalar() == 1
    migrate.upgrade(eng)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM radio(artists => ARRAY['nobody'])")).scalar() == 0
    eng.dispose()


def make_engine_for(url: str) -> sa.Engine:
    """An engine on a database of its own."""
    from marconi.config import Config

    return make_engine(Config(), url=url)
