"""kill -9 mid-run, restart, compare: the final database equals an uninterrupted run's, and no state between is torn.

The scrapers run as real subprocesses (`python -m scrapers …`) against the local fake, which answers slowly enough
that each SIGKILL lands while the job is working. The reference run uses the same job functions in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import sqlalchemy as sa
from fakes import FakeServer

from marconi.config import REPO_ROOT, Config
from marconi.db import make_engine
from scrapers.commons import scrape_images
from scrapers.http import HttpSettings, make_session
from scrapers.spotify import SpotifyClient, discover, fetch_tracks, title_words
from scrapers.wikidata import scrape_classes

DELAY = 0.03  # seconds the fake waits before each answer while a subprocess runs
FAKE_SERVER = {"n_classes": 30}
GLOBAL = ["--no-progress", "--backoff-base", "0.01", "--concurrency", "2"]


@pytest.fixture(scope="module")
def databases(new_database):
    """Two databases (reference run, killed run) shared by this module's tests."""
    urls = [new_database(), new_database()]
    engines = [make_engine(Config(), url=u) for u in urls]
    yield list(zip(urls, engines, strict=True))
    for eng in engines:
        eng.dispose()


@pytest.fixture()
def two_dbs(databases):
    """((reference url, engine), (killed-run url, engine)), emptied before the test."""
    for _, eng in databases:
        with eng.begin() as conn:
            conn.execute(sa.text(
                "TRUNCATE tracks, playlists, playlist_tracks, images, image_blobs, spotify_search_words, "
                "spotify_title_words, spotify_playlist_fetch, wikidata_classes, commons_files, scrape_cursors "
                "RESTART IDENTITY CASCADE"))
    return databases


def _run_cli(url: str, fake: FakeServer, args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, **fake.env())
    return subprocess.Popen([sys.executable, "-m", "scrapers", "--database-url", url, *GLOBAL, *args], env=env,
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _scalar(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def run_with_kills(engine, url, fake, args, progress_sql, thresholds, check) -> list[int]:
    """Start the job, SIGKILL it when ``progress_sql`` reaches each threshold, then run it to the end.

    Returns the progress seen at each kill; ``check`` asserts the state invariants after every kill.
    """
    fake.delay = DELAY
    seen = []
    try:
        for threshold in thresholds:
            proc = _run_cli(url, fake, args)
            deadline = time.monotonic() + 60
            while _scalar(engine, progress_sql) < threshold:
                assert proc.poll() is None, f"job ended before the kill: {proc.communicate()}"
                assert time.monotonic() < deadline, "job made no progress"
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc.communicate()
            assert proc.returncode == -signal.SIGKILL
            seen.append(_scalar(engine, progress_sql))
            check(engine)
        proc = _run_cli(url, fake, args)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    finally:
        fake.delay = 0.0
    check(engine)
    return seen


def snapshot(engine, queries: dict[str, str]) -> dict[str, list]:
    """The result of each query, sorted (ids and timestamps are left out of the queries)."""
    with engine.connect() as conn:
        return {name: sorted(tuple(r) for r in conn.execute(sa.text(sql)).all()) for name, sql in queries.items()}


# ------------------------------------------------------------------------------------------------- Spotify
SPOTIFY_STATE = {
    "tracks": "SELECT key, title, artist, duration_ms FROM tracks",
    "playlists": """SELECT p.key, p.name, p.owner, p.source, p.snapshot_id, p.n_tracks,
                           array_agg(t.key ORDER BY pt.position) FILTER (WHERE t.key IS NOT NULL)
                    FROM playlists p LEFT JOIN playlist_tracks pt ON pt.playlist_id = p.id
                    LEFT JOIN tracks t ON t.id = pt.track_id GROUP BY p.id""",
    "fetch": """SELECT playlist_id, name, owner, snapshot_id, n_tracks_reported, found_by, status, attempts,
                       n_tracks, n_skipped_null, n_skipped_local, n_skipped_other FROM spotify_playlist_fetch""",
    "words": "SELECT word, status, next_offset, total, n_found, attempts FROM spotify_search_words",
    "title_words": "SELECT word, n_playlists FROM spotify_title_words",
}


def spotify_invariants(engine) -> None:
    """No half-written playlist; 'done' exactly when the playlist row exists; title counts match the titles."""
    assert _scalar(engine, """SELECT count(*) FROM playlists p
                              WHERE p.n_tracks <> (SELECT count(*) FROM playlist_tracks pt WHERE pt.playlist_id = p.id)
                           """) == 0
    assert _scalar(engine, """SELECT count(*) FROM spotify_playlist_fetch f
                              FULL JOIN playlists p ON p.key = 'spotify:playlist:' || f.playlist_id
                              WHERE (f.status = 'done') IS DISTINCT FROM (p.id IS NOT NULL)""") == 0
    assert _scalar(engine, """SELECT count(*) FROM spotify_playlist_fetch f WHERE f.status = 'done'
                              AND f.n_tracks <> (SELECT n_tracks FROM playlists WHERE key = 'spotify:playlist:'
                                                 || f.playlist_id)""") == 0
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM spotify_playlist_fetch")).scalars().all()
        counted = dict(conn.execute(sa.text("SELECT word, n_playlists FROM spotify_title_words")).all())
    assert counted == dict(Counter(w for n in names for w in title_words(n)))
    assert _scalar(engine, "SELECT coalesce(sum(n_found), 0) FROM spotify_search_words") == \
        _scalar(engine, "SELECT count(*) FROM spotify_playlist_fetch")


def test_kill_9_spotify_discover_and_tracks(two_dbs, fake):
    """discover and tracks, each killed twice mid-run and restarted, end exactly as an uninterrupted run."""
    (_, ref), (url, eng) = two_dbs
    settings = HttpSettings(backoff_base=0.01)
    client = SpotifyClient(fake.scraper_config(), make_session(settings))
    discover(ref, client, max_playlists=60, page_size=10, progress=False)
    fetch_tracks(ref, client, page_size=10, concurrency=2, progress=False)
    expected = snapshot(ref, SPOTIFY_STATE)
    assert len(expected["playlists"]) == 60 and len(expected["words"]) >= 2

    kills = run_with_kills(eng, url, fake, ["spotify", "discover", "--max-playlists", "60", "--page-size", "10"],
                           "SELECT count(*) FROM spotify_playlist_fetch", [12, 35], spotify_invariants)
    assert 0 < kills[0] <= kills[1] < 60
    kills = run_with_kills(eng, url, fake, ["spotify", "tracks", "--page-size", "10"],
                           "SELECT count(*) FROM spotify_playlist_fetch WHERE status <> 'pending'", [10, 35],
                           spotify_invariants)
    assert 0 < kills[0] <= kills[1] < 60
    assert snapshot(eng, SPOTIFY_STATE) == expected


# ------------------------------------------------------------------------------------------ Wikidata/Commons
IMAGE_STATE = {
    "classes": "SELECT qid, label, description, wikipedia_url, image_file FROM wikidata_classes",
    "cursor": "SELECT name, position, done FROM scrape_cursors",
    "files": """SELECT f.file_name, f.qid, f.status, f.attempts, i.sha256
                FROM commons_files f LEFT JOIN images i ON i.id = f.image_id""",
    "images": """SELECT i.sha256, encode(sha256(b.data), 'hex'), length(b.thumbnail) > 0, i.label, i.description,
                        i.wikidata_item, i.licence, i.licence_url, i.author, i.attribution, i.source,
                        regexp_replace(i.source_url, '^http://[^/]+', ''), i.page_url, i.width, i.height, i.format
                 FROM images i LEFT JOIN image_blobs b ON b.image_id = i.id""",
}


def image_invariants(engine) -> None:
    """Every image has its bytes; 'done' exactly when the file points at an image; classes queue their files."""
    assert _scalar(engine, "SELECT count(*) FROM images i LEFT JOIN image_blobs b ON b.image_id = i.id "
                           "WHERE b.image_id IS NULL") == 0
    assert _scalar(engine, "SELECT count(*) FROM commons_files WHERE (status = 'done') <> (image_id IS NOT NULL)") == 0
    assert _scalar(engine, "SELECT count(*) FROM images i WHERE NOT EXISTS "
                           "(SELECT 1 FROM commons_files f WHERE f.image_id = i.id)") == 0
    assert _scalar(engine, "SELECT count(*) FROM wikidata_classes c WHERE NOT EXISTS "
                           "(SELECT 1 FROM commons_files f WHERE f.file_name = c.image_file)") == 0


def test_kill_9_wikidata_classes_and_commons_images(two_dbs, fake):
    """classes and images, each killed mid-run and restarted, end exactly as an uninterrupted run."""
    (_, ref), (url, eng) = two_dbs
    cfg = fake.scraper_config()
    session = make_session(HttpSettings(backoff_base=0.01))
    scrape_classes(ref, session, cfg.wikidata_sparql_url, limit=30, page_size=4, progress=False)
    scrape_images(ref, session, cfg.commons_api_url, batch_size=3, concurrency=2, progress=False)
    expected = snapshot(ref, IMAGE_STATE)
    assert len(expected["images"]) == 30

    kills = run_with_kills(eng, url, fake, ["wikidata", "classes", "--limit", "30", "--page-size", "4"],
                           "SELECT count(*) FROM wikidata_classes", [8], image_invariants)
    assert 0 < kills[0] < 30
    kills = run_with_kills(eng, url, fake, ["commons", "images", "--batch-size", "3"],
                           "SELECT count(*) FROM commons_files WHERE status <> 'pending'", [5, 17],
                           image_invariants)
    assert 0 < kills[0] <= kills[1] < 30
    assert snapshot(eng, IMAGE_STATE) == expected
