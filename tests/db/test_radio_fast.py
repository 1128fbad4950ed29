"""Migration 0013 makes radio() cheaper per candidate without changing a single answer: every row (key, distance,
score, reason) equals the 0011 function's, for seeds, artists, tags, modes, caps per artist, variety and exclude."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import sqlalchemy as sa

from marconi.db import migrate

MIGRATIONS = Path(migrate.__file__).resolve().parents[2] / "migrations" / "versions"
CALL = ("SELECT * FROM {fn}(CAST(:seeds AS text[]), :n, :cap, :variety, true, 400, CAST(:exclude AS text[]), "
        "CAST(:artists AS text[]), CAST(:tags AS text[]), :mode)")


def _radio_0011() -> str:
    """The 0011 radio() as pg_temp.radio_0011 (gone with the session)."""
    spec = importlib.util.spec_from_file_location("m0011", MIGRATIONS / "0011_artist_tag_radio.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RADIO.replace("CREATE FUNCTION radio(", "CREATE FUNCTION pg_temp.radio_0011(", 1)


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


def test_radio_answers_exactly_as_the_0011_radio(trained_engine):
    with trained_engine.connect() as conn:
        assert migrate.revisions(trained_engine)[0] >= "0013"
        conn.execute(sa.text(_radio_0011()))
        asks = _requests(conn)
        for ask in asks:
            new = conn.execute(sa.text(CALL.format(fn="radio")), ask).all()
            old = conn.execute(sa.text(CALL.format(fn="pg_temp.radio_0011")), ask).all()
            assert new == old, ask
            assert new, ask  # a real answer, not two empty ones
        assert any(ask["cap"] for ask in asks) and any(ask["artists"] for ask in asks)
        conn.rollback()
