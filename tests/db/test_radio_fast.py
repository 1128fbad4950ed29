"""Migrations 0013 and 0014 make radio() cheaper without changing a single answer: every row (key, distance, score,
reason) equals the 0011 and the 0013 function's, for seeds, artists, tags, modes, caps per artist, variety and
exclude, on the exact (cube) and the approximate (HNSW) kNN path. Migration 0015 changes tag radios only (more
of their songs carry the tag): every request without tags still answers as 0011's, 0013's and 0014's radio()."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.util import load_python_file

from marconi.db import migrate

MIGRATIONS = Path(migrate.__file__).resolve().parents[2] / "migrations" / "versions"
CALL = ("SELECT * FROM {fn}(CAST(:seeds AS text[]), :n, :cap, :variety, :exact, 400, CAST(:exclude AS text[]), "
        "CAST(:artists AS text[]), CAST(:tags AS text[]), :mode)")


def _migration(file_name: str):
    return load_python_file(MIGRATIONS, file_name)


def _old_radio(file_name: str) -> tuple[list[str], str]:
    """An earlier revision's radio() (and its kNN step, where that revision changed it) as pg_temp functions (gone
    with the session): (statements to run, the radio's name)."""
    module = _migration(file_name)
    tag = file_name[:4]
    radio = module.RADIO.replace("CREATE OR REPLACE FUNCTION", "CREATE FUNCTION", 1)
    radio = radio.replace("CREATE FUNCTION radio(", f"CREATE FUNCTION pg_temp.radio_{tag}(", 1)
    statements = []
    if "OR REPLACE FUNCTION radio_candidates_near(" in module.CANDIDATES_NEAR:  # changed by that revision
        statements.append(module.CANDIDATES_NEAR.replace("OR REPLACE FUNCTION radio_candidates_near(",
                                                         f"FUNCTION pg_temp.near_{tag}(", 1))
        radio = radio.replace("radio_candidates_near(", f"pg_temp.near_{tag}(", 1)
    return [*statements, radio], f"pg_temp.radio_{tag}"


def _requests(conn) -> list[dict]:
    rng = random.Random(14)
    keys = conn.execute(sa.text("SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id "
                                "ORDER BY t.key")).scalars().all()
    artists = conn.execute(sa.text("SELECT name FROM artist_vectors WHERE songs >= 5 ORDER BY songs DESC, name "
                                   "LIMIT 20")).scalars().all()
    tags = conn.execute(sa.text("SELECT g.name FROM tags g JOIN tag_vectors tv ON tv.tag_id = g.id "
                                "ORDER BY tv.songs DESC, g.name LIMIT 20")).scalars().all()
    asks = []
    for i in range(24):
        ask = {"seeds": rng.sample(keys, rng.randint(1, 3)), "n": rng.choice([10, 25]), "cap": None, "variety": 0.0,
               "exclude": [], "artists": [], "tags": [], "mode": ["medium", "easy", "hard"][i % 3]}
        if i % 4 == 1:
            ask["cap"] = rng.choice([1, 2])
        if i % 4 == 2:
            ask["variety"] = 0.5
        if i % 6 == 5:
            ask["exclude"] = [rng.choice(keys), rng.choice(artists)]
        if i % 5 == 4:
            ask["seeds"], ask["artists"] = [], [rng.choice(artists)]
        if i % 7 == 6:
            ask["tags"] = [rng.choice(tags)]
        asks.append(ask)
    return asks


def _has_hnsw(conn) -> bool:
    return conn.execute(sa.text("SELECT to_regclass('song_vectors_hvec_hnsw') IS NOT NULL")).scalar()


@pytest.mark.parametrize("exact", [True, False], ids=["cube", "hnsw"])
@pytest.mark.parametrize("revision", ["0011_artist_tag_radio.py", "0013_radio_fast.py",
                                      "0014_radio_no_replanning.py"])
def test_radio_answers_exactly_as_the_earlier_radio(trained_engine, revision, exact):
    with trained_engine.connect() as conn:
        assert migrate.revisions(trained_engine)[0] >= "0015"
        if not exact and not _has_hnsw(conn):
            pytest.skip("no pgvector HNSW index on this server")
        # plan both functions now: a pooled connection keeps radio()'s generic plan from earlier tests, which may
        # read the HNSW index where a fresh plan scans (or the other way), and approximate answers differ in the tail
        conn.execute(sa.text("DISCARD PLANS"))
        statements, old_radio = _old_radio(revision)
        for statement in statements:
            conn.execute(sa.text(statement))
        asks = _requests(conn)
        plain = 0
        for ask in asks:
            ask["exact"] = exact
            new = conn.execute(sa.text(CALL.format(fn="radio")), ask).all()
            assert new, ask  # a real answer, not two empty ones
            if ask["tags"]:  # 0015 changed tag radios (test_tag_radio_keeps_to_its_tag)
                continue
            old = conn.execute(sa.text(CALL.format(fn=old_radio)), ask).all()
            assert new == old, ask
            plain += ask["mode"] == "medium" and not ask["artists"] and ask["cap"] is None
        assert any(ask["cap"] for ask in asks) and any(ask["artists"] for ask in asks)
        assert any(ask["tags"] for ask in asks) and any(ask["exclude"] and not ask["tags"] for ask in asks)
        assert plain >= 3  # 0014's plain path (tracks read best first) is compared too
        conn.rollback()


def test_radio_converts_its_query_vector_once(trained_engine):
    """With one plan kept per session (0014), the HNSW sort key must still be computed once per radio, not once per
    candidate row (0013's query did that under a generic plan)."""
    with trained_engine.connect() as conn:
        if not _has_hnsw(conn):
            pytest.skip("no pgvector HNSW index on this server")
        conn.execute(sa.text("SET track_functions = 'all'"))
        seeds = conn.execute(sa.text("SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id "
                                     "ORDER BY t.key LIMIT 3")).scalars().all()
        for seed in seeds:  # several calls: the session's generic plans are in use by the last ones
            rows = conn.execute(sa.text("SELECT * FROM radio(CAST(:s AS text[]), 25)"), {"s": [seed]}).all()
            assert len(rows) == 25
        calls = conn.execute(sa.text("SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
                                     "WHERE funcname = 'marconi_cube_to_vector'")).scalar()
        assert 1 <= calls <= len(seeds), calls
        conn.rollback()


def _tagged_in_top(conn, fn: str, tag: str, n: int = 20) -> tuple[int, list[str]]:
    """(how many of a tag radio's first ``n`` songs carry the tag, the radio's reasons)."""
    rows = conn.execute(sa.text(f"SELECT r.key, r.reason FROM {fn}(tags => CAST(:tags AS text[]), n => :n, "
                                "exact => true) r"), {"tags": [tag], "n": n}).all()
    tagged = conn.execute(sa.text("SELECT count(*) FROM tracks t JOIN track_tags tt ON tt.track_id = t.id "
                                  "JOIN tags g ON g.id = tt.tag_id WHERE t.key = ANY (:keys) AND g.name = :tag"),
                          {"keys": [r.key for r in rows], "tag": tag}).scalar()
    assert len(rows) == n, (tag, rows)
    return tagged, [r.reason for r in rows]


def test_tag_radio_keeps_to_its_tag(trained_engine):
    """Migration 0015: a tag radio's top 20 holds more songs carrying the tag than 0014's, and the tag's songs share
    out their co-occurrence neighbours (reasons 'often played with <tag> songs' or 'tag: <tag>')."""
    with trained_engine.connect() as conn:
        statements, old_radio = _old_radio("0014_radio_no_replanning.py")
        for statement in statements:
            conn.execute(sa.text(statement))
        tags = conn.execute(sa.text("SELECT g.name FROM tags g JOIN tag_vectors tv ON tv.tag_id = g.id "
                                    "ORDER BY tv.songs DESC, g.name LIMIT 10")).scalars().all()
        assert len(tags) == 10
        new = {tag: _tagged_in_top(conn, "radio", tag) for tag in tags}
        old = {tag: _tagged_in_top(conn, old_radio, tag) for tag in tags}
        assert sum(n for n, _ in new.values()) > sum(n for n, _ in old.values()), (new, old)
        assert all(new[tag][0] >= old[tag][0] for tag in tags), (new, old)
        reasons = [r for _, rs in new.values() for r in rs]
        assert sum(r.startswith("tag: ") for r in reasons) > sum(r.startswith("tag: ") for _, rs in old.values()
                                                                 for r in rs)
        conn.rollback()


def test_migration_0015_downgrades_to_the_0014_radio_and_back(new_database):
    from marconi.config import Config
    from marconi.db import make_engine

    eng = make_engine(Config(), url=new_database())
    source = sa.text("SELECT prosrc || obj_description(oid, 'pg_proc') FROM pg_proc WHERE proname = 'radio'")
    try:
        migrate.downgrade(eng, "0014")
        with eng.connect() as conn:
            text = conn.execute(source).scalar()
            assert "tag_sources" not in text and "with an asked tag +0.75" not in text
        migrate.upgrade(eng)
        with eng.connect() as conn:
            text = conn.execute(source).scalar()
            assert "tag_sources" in text and "with an asked tag +0.75" in text
            assert conn.execute(sa.text("SELECT count(*) FROM radio(tags => ARRAY['nothing'])")).scalar() == 0
    finally:
        eng.dispose()
