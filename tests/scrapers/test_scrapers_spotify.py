"""Spotify scraper against the local fake (recorded real responses over HTTP), outcomes asserted in PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa

from scrapers.config import ScraperConfig
from scrapers.config import from_env as scraper_env
from scrapers.http import HttpSettings, make_session
from scrapers.spotify import (
    SpotifyAuthError,
    SpotifyClient,
    discover,
    fetch_tracks,
    item_track,
    parse_search_page,
    title_words,
)

FAST = HttpSettings(connect_timeout=2.0, read_timeout=2.0, max_retries=4, backoff_base=0.005, backoff_max=0.02)

pytestmark = pytest.mark.usefixtures("emptied", "fake_cleared")  # every test starts from an empty database


def client_for(fake, **http) -> SpotifyClient:
    """A Spotify client on the fake with fast retries."""
    return SpotifyClient(fake.scraper_config(), make_session(FAST, **http))


def rows(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def searched(fake) -> list[tuple[str, int]]:
    return [(r.params["q"], int(r.params["offset"])) for r in fake.hits("/spotify/v1/search") if r.status == 200]


# ------------------------------------------------------------------------------------------------- parsing
def test_parsers_on_recorded_shapes(data_dir):
    """Search pages drop null items; playlist items: track → Track, null → 'null', local → 'local', episode."""
    import json

    root = data_dir / "fixtures" / "spotify-web-api-responses"
    page = json.loads((root / "spotify-web-api-java/SearchPlaylistsRequest.json").read_text())["playlists"]
    page["items"].insert(3, None)
    found, total, has_next = parse_search_page(page)
    assert len(found) == 10 and total == 21476 and has_next
    assert found[0] == {"id": "37i9dQZF1DWT6VDwxLyl0W", "name": "This Is: Neil Young", "owner": "spotify",
                        "snapshot_id": page["items"][0]["snapshot_id"], "n_tracks": 50}
    items = json.loads((root / "spotify-web-api-java/GetPlaylistsItemsRequest.json").read_text())["items"]
    t = item_track(items[0])
    assert t.key == "spotify:track:7pk3EpFtmsOdj8iUhjmeCM" and t.artist == "Zion & Lennox, J Balvin"
    assert t.title == "Otra Vez (feat. J Balvin)" and t.duration_ms == 209453
    assert item_track(items[1]) == "null"
    assert item_track({"is_local": True, "track": {"id": None, "type": "track"}}) == "local"
    assert item_track({"track": {"id": "x", "type": "episode"}}) == "other"
    assert title_words("Muse — Feeling Good") == {"muse", "feeling", "good"}
    assert title_words("¿No Podíamos Ser Agua?") == {"no", "podíamos", "ser", "agua"}


# ----------------------------------------------------------------------------------------------- discovery
def test_discover_expands_by_most_frequent_title_word(engine, fake):
    """'a' first, then each next word is the most frequent unsearched word of the stored titles; exact limit."""
    summary = discover(engine, client_for(fake), max_playlists=45, page_size=10, progress=False)
    assert summary["discovered_total"] == 45 and summary["stopped"] == "max_playlists reached"
    assert rows(engine, "SELECT count(*) FROM spotify_playlist_fetch")[0][0] == 45
    words = [w for w, _ in searched(fake)]
    order = list(dict.fromkeys(words))
    assert order[0] == "a" and len(order) >= 2
    # Replay the rule: after each word, the next one is the top unsearched word among the titles known then.
    found_by = rows(engine, "SELECT found_by, name FROM spotify_playlist_fetch ORDER BY seq")
    for i, word in enumerate(order[1:], 1):
        titles = [name for fb, name in found_by if fb in order[:i]]
        counts = Counter(w for n in titles for w in title_words(n))
        for w in order[:i]:
            counts.pop(w, None)
        best = max(counts.values())
        assert word == min(w for w, c in counts.items() if c == best), (i, word)
    # Title-word counts agree with the stored titles.
    stored = dict(rows(engine, "SELECT word, n_playlists FROM spotify_title_words"))
    assert stored == dict(Counter(w for _, n in found_by for w in title_words(n)))
    # Every page was searched once, and the search-word state says where to continue.
    assert len(searched(fake)) == len(set(searched(fake)))
    state = dict(rows(engine, "SELECT word, status FROM spotify_search_words"))
    assert state["a"] == "done" and set(state.values()) <= {"done", "searching"}


def test_discover_resumes_at_the_stored_offset(engine, fake):
    """A second run with a higher limit continues the word being searched at its stored offset."""
    discover(engine, client_for(fake), max_playlists=12, page_size=5, progress=False)
    first = searched(fake)
    assert first[0] == ("a", 0)
    (word, next_offset, status), = rows(engine, "SELECT word, next_offset, status FROM spotify_search_words "
                                                "WHERE status = 'searching'")
    fake.clear()
    discover(engine, client_for(fake), max_playlists=30, page_size=5, progress=False)
    assert searched(fake)[0] == (word, next_offset)
    assert not set(searched(fake)) & set(first[:-1])  # only a page cut short by the limit is asked again
    assert rows(engine, "SELECT count(*), count(DISTINCT playlist_id) FROM spotify_playlist_fetch")[0] == (30, 30)


def test_discover_search_failure_is_recorded_then_retried(engine, fake):
    """Search failing past the retries marks the word failed; the next run reopens it and finishes."""
    fake.add_fault("/spotify/v1/search", "status", status=503, times=100)
    s = discover(engine, client_for(fake, max_retries=1), max_playlists=10, page_size=10, progress=False)
    assert s["failed"] == 1 and s["discovered_total"] == 0
    assert rows(engine, "SELECT word, status, attempts FROM spotify_search_words") == [("a", "failed", 1)]
    fake.clear()
    s = discover(engine, client_for(fake), max_playlists=10, page_size=10, progress=False)
    assert s["discovered_total"] == 10
    assert rows(engine, "SELECT status, attempts FROM spotify_search_words WHERE word = 'a'")[0][1] == 1


# -------------------------------------------------------------------------------------------------- tracks
def _expected_items(fake, pid):
    items = fake.spotify.playlist_items(pid)
    keys = [f"spotify:track:{i['track']['id']}" for i in items if i.get("track") and not i.get("is_local")]
    return keys, sum(1 for i in items if i.get("track") is None), sum(1 for i in items if i.get("is_local"))


def test_tracks_written_with_skips_counted(engine, fake):
    """Every discovered playlist is stored with its tracks in order; null tracks and local files skipped, counted."""
    discover(engine, client_for(fake), max_playlists=20, page_size=10, progress=False)
    s = fetch_tracks(engine, client_for(fake), page_size=7, concurrency=3, progress=False)
    assert s["fetched"] == 20 and s["failed"] == 0 and s["skipped"] == 0
    assert s["skipped_null_tracks"] > 0 and s["skipped_local_files"] > 0
    for pid, name, owner in rows(engine, "SELECT playlist_id, name, owner FROM spotify_playlist_fetch"):
        keys, n_null, n_local = _expected_items(fake, pid)
        got = rows(engine, """SELECT t.key FROM playlists p JOIN playlist_tracks pt ON pt.playlist_id = p.id
                              JOIN tracks t ON t.id = pt.track_id WHERE p.key = :k ORDER BY pt.position""",
                   k=f"spotify:playlist:{pid}")
        assert [r[0] for r in got] == keys
        (st, n, nn, nl, pname, pown, ptracks), = rows(
            engine, """SELECT f.status, f.n_tracks, f.n_skipped_null, f.n_skipped_local, p.name, p.owner, p.n_tracks
                       FROM spotify_playlist_fetch f JOIN playlists p ON p.key = 'spotify:playlist:' || f.playlist_id
                       WHERE f.playlist_id = :id""", id=pid)
        assert (st, n, nn, nl, ptracks) == ("done", len(keys), n_null, n_local, len(keys))
        assert (pname, pown) == (name, owner)
    assert rows(engine, "SELECT count(*) FROM playlists WHERE source = 'spotify'")[0][0] == 20
    # Running again fetches nothing and changes nothing.
    fake.clear()
    assert fetch_tracks(engine, client_for(fake), progress=False)["playlists"] == 0
    assert fake.hits("/items") == []


def test_tracks_404_and_403_are_marked_and_skipped(engine, fake):
    """A playlist answering 404 is 'not_found', one answering 403 'forbidden'; neither is written or retried."""
    discover(engine, client_for(fake), max_playlists=6, page_size=10, progress=False)
    ids = [r[0] for r in rows(engine, "SELECT playlist_id FROM spotify_playlist_fetch ORDER BY seq")]
    fake.not_found_playlists.add(ids[1])
    fake.forbidden_playlists.add(ids[2])
    s = fetch_tracks(engine, client_for(fake), progress=False)
    assert (s["fetched"], s["skipped"], s["not_found"], s["forbidden"], s["failed"]) == (4, 2, 1, 1, 0)
    status = dict(rows(engine, "SELECT playlist_id, status FROM spotify_playlist_fetch"))
    assert status[ids[1]] == "not_found" and status[ids[2]] == "forbidden"
    assert rows(engine, "SELECT count(*) FROM playlists WHERE key IN (:a, :b)",
                a=f"spotify:playlist:{ids[1]}", b=f"spotify:playlist:{ids[2]}")[0][0] == 0
    assert len(fake.hits(ids[1])) == 1  # 404 is not retried
    fake.clear()
    assert fetch_tracks(engine, client_for(fake), progress=False)["playlists"] == 0


def test_tracks_survive_every_fault_kind(engine, fake):
    """429 + Retry-After, 500, 503, slow answers, resets and malformed JSON are retried; all playlists complete."""
    discover(engine, client_for(fake), max_playlists=8, page_size=10, progress=False)
    fake.clear()
    fake.add_fault("/items", "status", status=429, retry_after="0")
    fake.add_fault("/items", "status", status=500)
    fake.add_fault("/items", "status", status=503)
    fake.add_fault("/items", "slow", delay=0.8)
    fake.add_fault("/items", "reset")
    fake.add_fault("/items", "malformed")
    client = client_for(fake, read_timeout=0.3, max_retries=8)
    s = fetch_tracks(engine, client, concurrency=1, progress=False)
    assert s["fetched"] == 8 and s["failed"] == 0
    assert all(f.hits == 1 for f in fake.faults)
    stats = client.session.stats
    assert stats["retry:HTTP 429"] == 1 and stats["retry:HTTP 500"] == 1 and stats["retry:HTTP 503"] == 1
    assert stats["retry:ReadTimeout"] == 1 and stats["retry:malformed JSON"] == 1
    assert stats["retries"] == 6
    assert rows(engine, "SELECT count(*) FROM spotify_playlist_fetch WHERE status <> 'done'")[0][0] == 0


def test_tracks_failure_recorded_then_fetched_by_a_later_pass(engine, fake):
    """A playlist that keeps failing is 'failed' (attempts, last error) and nothing of it is written; later: done."""
    discover(engine, client_for(fake), max_playlists=4, page_size=10, progress=False)
    bad = rows(engine, "SELECT playlist_id FROM spotify_playlist_fetch ORDER BY seq")[2][0]
    fake.add_fault(bad, "status", status=502, times=100)
    s = fetch_tracks(engine, client_for(fake, max_retries=2), progress=False)
    assert (s["fetched"], s["failed"]) == (3, 1)
    (status, attempts, err), = rows(engine, "SELECT status, attempts, last_error FROM spotify_playlist_fetch "
                                            "WHERE playlist_id = :p", p=bad)
    assert status == "failed" and attempts == 1 and "502" in err
    assert rows(engine, "SELECT count(*) FROM playlists WHERE key = :k", k=f"spotify:playlist:{bad}")[0][0] == 0
    fake.clear()
    s = fetch_tracks(engine, client_for(fake), progress=False)
    assert (s["playlists"], s["fetched"]) == (1, 1)
    assert rows(engine, "SELECT status, attempts FROM spotify_playlist_fetch WHERE playlist_id = :p",
                p=bad)[0] == ("done", 1)


def test_outage_stops_the_run_and_leaves_the_rest_pending(engine, fake):
    """Failures in a row (an outage) stop the run after the limit; untouched playlists stay pending."""
    discover(engine, client_for(fake), max_playlists=8, page_size=10, progress=False)
    fake.add_fault("/items", "reset", times=1000)
    s = fetch_tracks(engine, client_for(fake, max_retries=0), concurrency=1, max_failures_in_a_row=3, progress=False)
    assert s["failed"] == 3 and "3 playlists failed in a row" in s["stopped"]
    status = Counter(r[0] for r in rows(engine, "SELECT status FROM spotify_playlist_fetch"))
    assert status == {"failed": 3, "pending": 5}
    fake.clear()
    assert fetch_tracks(engine, client_for(fake), progress=False)["fetched"] == 8


def test_cli_help_lists_every_command():
    """`python -m scrapers --help` and each command's help work without a database."""
    from click.testing import CliRunner

    from scrapers.__main__ import main

    runner = CliRunner()
    for args in ([], ["spotify", "discover"], ["spotify", "tracks"], ["wikidata", "classes"], ["commons", "images"]):
        result = runner.invoke(main, [*args, "--help"])
        assert result.exit_code == 0, result.output
    assert "--max-playlists" in runner.invoke(main, ["spotify", "discover", "--help"]).output
    assert "--width" in runner.invoke(main, ["commons", "images", "--help"]).output


def test_expired_token_is_refreshed(engine, fake):
    """A 401 (token expired early) makes the client fetch a new token and repeat the call once."""
    discover(engine, client_for(fake), max_playlists=5, page_size=10, progress=False)
    fake.clear()
    fake.add_fault("/items", "expire_token")
    s = fetch_tracks(engine, client_for(fake), concurrency=1, progress=False)
    assert s["fetched"] == 5 and s["failed"] == 0
    assert len(fake.hits("/spotify/api/token")) == 2
    assert [r.status for r in fake.hits("/items")][:2] == [401, 200]


def test_wrong_credentials_fail_clearly(engine, fake):
    """Missing credentials and a rejected client both raise SpotifyAuthError (no prompt, no partial state)."""
    with pytest.raises(SpotifyAuthError, match="SPOTIPY_CLIENT_ID"):
        SpotifyClient(ScraperConfig(), make_session(FAST))
    cfg = fake.scraper_config().with_overrides(spotify_client_secret="wrong")
    with pytest.raises(SpotifyAuthError, match="invalid_client"):
        discover(engine, SpotifyClient(cfg, make_session(FAST)), max_playlists=5, progress=False)


def test_end_to_end_discover_tracks_train_radio(engine, fake):
    """discover → tracks → train_songs → a radio answer for a scraped track."""
    from marconi.recommenders.request import RadioRequest
    from marconi.recommenders.song2vec import radio
    from marconi.training.song2vec import train_songs

    discover(engine, client_for(fake), max_playlists=60, page_size=50, progress=False)
    s = fetch_tracks(engine, client_for(fake), concurrency=4, progress=False)
    assert s["fetched"] == 60
    run = train_songs(engine, progress=False, epochs=5, min_count=1)
    assert run["vectors"] > 20
    key = rows(engine, """SELECT t.key FROM tracks t JOIN playlist_tracks pt ON pt.track_id = t.id
                          GROUP BY t.key ORDER BY count(*) DESC, t.key LIMIT 1""")[0][0]
    with engine.connect() as conn:
        answer = radio(conn, RadioRequest(seeds=(key,), size=5))
    assert answer["size"] == 5 and all(p["key"].startswith("spotify:track:") for p in answer["playlist"])
    assert key not in [p["key"] for p in answer["playlist"]]


# ----------------------------------------------------------------------------------------------------- live
@pytest.mark.live
def test_live_spotify_search_and_items():
    """Against the real API (needs SPOTIPY_CLIENT_ID/SECRET): one search page and one playlist's items."""
    cfg = scraper_env()
    if not cfg.has_spotify_credentials:
        pytest.skip("SPOTIPY_CLIENT_ID / SPOTIPY_CLIENT_SECRET not set")
    client = SpotifyClient(cfg, make_session())
    found, total, _ = parse_search_page(client.search_playlists("a", 0, 10))
    assert found and total
    page = client.playlist_items(found[0]["id"], 0, 20)
    assert isinstance(page["items"], list)
