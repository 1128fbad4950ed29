"""Reads from a hot standby: a primary and a streaming standby started from the embedded PostgreSQL's binaries.

The standby is made with ``pg_basebackup -R`` (``primary_conninfo``, a replication slot) before anything is loaded,
so the schema, yes_small and the song model (HNSW index included) all reach it through WAL. The app is served
through Flask's test client with ``DATABASE_REPLICA_URLS`` naming the standby. The tests check that reads go to the
standby; that it serves a retrained model only once it has replayed the swap, never a mix of runs; and that reads
fall back to the primary while it is stopped, with no 5xx, and go back to it once it runs again.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from marconi.db import hide_password, make_engine, migrate
from marconi.db.replicas import APPLICATION_NAME, PrimaryPositions

SLOT = "marconi_test_standby"
SECRET = "not-shown-anywhere"  # a password in the replica URL (the socket's trust rule ignores it)
PLAYLISTS = 6000  # the first playlists of yes_small: a real data set, small enough to import and train in seconds


def yes_subset(source: Path, target: Path, playlists: int) -> Path:
    """A copy of the yes.com data set in ``source`` with only its first ``playlists`` playlists (all songs and tags)."""
    target.mkdir(parents=True)
    for name in ("song_hash.txt", "tag_hash.txt", "tags.txt"):
        (target / name).write_bytes((source / name).read_bytes())
    with (source / "train.txt").open() as f:
        (target / "train.txt").write_text("".join(itertools.islice(f, playlists + 2)))  # 2 header lines
    return target


def wait_for(predicate, what: str, timeout: float = 30.0, every: float = 0.1):
    """Return predicate()'s first truthy value, polling; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Pair:
    """A primary and its hot standby."""

    bindir: Path
    primary_url: str
    primary: sa.Engine
    standby_url: str  # with a password, for the app to hide
    standby_pgdata: Path
    standby: sa.Engine  # the superuser, in autocommit (to pause replay, to look at pg_stat_activity)


@pytest.fixture(scope="module")
def pair(data_dir, base_config):
    """A primary holding yes_small and a song model, and its hot standby; both are stopped at the end."""
    from servers import pg_bindir, start_cluster, start_standby, stop_cluster

    from marconi.importers.playlists import import_playlists
    from marconi.training.song2vec import train_songs

    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="marconi-replicas-"))  # short: a socket path holds at most 107 bytes
    root.chmod(0o755)  # the servers' owner (the postgres user when we are root) goes through it
    started: list[Path] = []
    try:
        pgdata, primary_url = start_cluster(bindir, root / "primary", "marconi", settings={
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        started.append(pgdata)
        standby_pgdata, standby_url = start_standby(bindir, root / "primary", root / "standby", "marconi", SLOT)
        started.append(standby_pgdata)
        primary = make_engine(base_config, url=primary_url)
        migrate.upgrade(primary)
        import_playlists(primary, yes_subset(data_dir / "playlists" / "yes_small", root / "yes_small", PLAYLISTS),
                         "yes", progress=False)
        train_songs(primary, progress=False, config=base_config, epochs=2, vector_size=16)
        standby = make_engine(base_config, url=standby_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        yield Pair(bindir, primary_url, primary, standby_url.replace("postgres:@", f"postgres:{SECRET}@"),
                   standby_pgdata, standby)
        primary.dispose()
    finally:
        for pgdata in reversed(started):
            stop_cluster(bindir, pgdata)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def app(pair, base_config):
    """The app on the primary, reading from the standby."""
    from marconi import create_app

    application = create_app({"database_url": pair.primary_url, "database_replica_urls": pair.standby_url,
                              "home": str(base_config.home)})
    application.testing = True
    yield application
    application.extensions["marconi.read_engine"].dispose()


@pytest.fixture(scope="module")
def questions(app, pair):
    """The radio requests asked: one seed, then two (songs the model knows, the most played first)."""
    wait_for(lambda: caught_up(app), "the standby to replay the first model")
    with pair.primary.connect() as conn:
        keys = conn.execute(sa.text("SELECT t.key FROM song_vectors sv JOIN tracks t ON t.id = sv.track_id "
                                    "JOIN playlist_tracks pt ON pt.track_id = t.id GROUP BY t.key "
                                    "ORDER BY count(*) DESC, t.key LIMIT 3")).scalars().all()
    return [{"seeds": keys[:1], "size": 10}, {"seeds": keys[1:], "size": 10}]


def router(app):
    return app.extensions["marconi.read_engine"]


def replica_status(app) -> dict:
    """The standby as /api/status shows it."""
    r = app.test_client().get("/api/status")
    assert r.status_code == 200, r.get_data(as_text=True)
    (replica,) = r.get_json()["replicas"]
    return replica


def caught_up(app) -> bool:
    replica = replica_status(app)
    return replica["healthy"] and replica["lag_bytes"] == 0


def serving_song_run(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT id FROM model_runs WHERE kind = 'songs' AND status = 'serving'")).scalar()


def ask(client, question) -> tuple[int, tuple]:
    """Ask one radio; return (its model run, its playlist's keys); fail on anything but a 200."""
    r = client.post("/api/radio", json=question)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    return body["model_run"], tuple(item["key"] for item in body["playlist"])


def test_lag_in_seconds_counts_from_when_the_primary_first_wrote_past_the_standby():
    positions = PrimaryPositions(keep_s=60)
    for at, lsn in ((100.0, "0/1000"), (101.0, "0/1000"), (102.0, "0/2000"), (103.0, "1/0")):
        positions.record(lsn, at)
    state = {"replayed": "0/1800", "lag_bytes": 1, "since_replayed": 30.0}
    assert positions.lag_seconds(state, now=104.0) == 2.0  # past 0/1800 since 102, not 30 s since its last commit
    assert positions.lag_seconds({**state, "replayed": "0/2000"}, now=104.0) == 1.0
    assert positions.lag_seconds({**state, "replayed": "0/800"}, now=104.0) == 30.0  # older than what is kept
    assert positions.lag_seconds({**state, "lag_bytes": 0}, now=104.0) == 0.0
    positions.record("1/10", 200.0)  # positions older than keep_s are forgotten
    assert positions.lag_seconds({**state, "replayed": "1/0"}, now=201.0) == 30.0


def test_passwords_are_hidden_from_replica_urls():
    assert hide_password("postgresql://u:p%40ss@db1:5432/marconi") == "postgresql://u:***@db1:5432/marconi"
    assert hide_password("postgresql://u@/marconi?host=/run/pg&password=x&sslmode=require") == \
        "postgresql://u@/marconi?host=/run/pg&password=***&sslmode=require"
    assert hide_password("postgresql://u:@h/m") == "postgresql://u:@h/m"


def test_reads_go_to_the_standby_and_status_shows_its_lag(app, pair, questions):
    primary, standby = pair.primary, pair.standby
    before_replica, before_primary = router(app).replicas[0].reads, router(app).primary_reads
    client = app.test_client()
    for question in questions:
        run, playlist = ask(client, question)
        assert run == serving_song_run(primary) and len(playlist) == 10
    found = client.get("/api/songs", query_string={"q": "a", "limit": 5})
    assert found.status_code == 200 and len(found.get_json()["songs"]) == 5
    assert client.get("/api/artists", query_string={"q": "a"}).status_code == 200
    assert client.get("/api/images/1").status_code == 404  # no images here: still asked of the standby
    assert client.get("/api/images/1/similar").status_code == 404  # through the image searcher, holding the router
    assert router(app).replicas[0].reads == before_replica + len(questions) + 4
    assert router(app).primary_reads == before_primary
    # The servers' own view: the read connections are on the standby (that its data answers is shown by the
    # next test, where it serves another run than the primary).
    with router(app).connect() as conn:
        assert conn.execute(sa.text("SHOW transaction_isolation")).scalar() == "repeatable read"
    readers = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a")
    with standby.connect() as conn:
        assert conn.execute(readers, {"a": APPLICATION_NAME}).scalar() >= 1
        assert conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar()
    with primary.connect() as conn:
        assert conn.execute(readers, {"a": APPLICATION_NAME}).scalar() == 0
    replica = replica_status(app)
    assert replica["healthy"] and replica["error"] is None
    assert replica["lag_bytes"] == 0 and replica["lag_seconds"] == 0
    assert SECRET not in replica["url"] and "postgres:***@" in replica["url"]
    assert SECRET not in client.get("/api/status").get_data(as_text=True)


def test_the_standby_serves_a_new_run_only_once_it_has_replayed_it_never_a_mix(app, pair, questions, base_config):
    from marconi.training.song2vec import train_songs

    primary, standby = pair.primary, pair.standby
    router(app).max_lag_s = 3600  # replay is paused on purpose below, for longer than a replica may lag by default
    client = app.test_client()
    old_run = serving_song_run(primary)
    old_answers = {i: ask(client, q) for i, q in enumerate(questions)}
    assert {run for run, _ in old_answers.values()} == {old_run}
    with standby.connect() as conn:
        conn.execute(sa.text("SELECT pg_wal_replay_pause()"))
    try:
        train_songs(primary, progress=False, config=base_config, epochs=2, vector_size=24)  # other dimensions
        new_run = serving_song_run(primary)
        assert new_run != old_run
        wait_for(lambda: replica_status(app)["lag_bytes"] > 0, "the paused standby to show its lag")
        for i, q in enumerate(questions):  # the primary serves the new run; the standby has not replayed it
            assert ask(client, q) == old_answers[i]
    finally:
        with standby.connect() as conn:
            conn.execute(sa.text("SELECT pg_wal_replay_resume()"))

    answers: dict = defaultdict(set)
    failures: list = []
    stop = threading.Event()

    def keep_asking(n: int) -> None:
        own = app.test_client()
        while not stop.is_set():
            i = n % len(questions)
            try:
                run, playlist = ask(own, questions[i])
            except AssertionError as exc:  # a 5xx: an answer that mixed two runs fails radio()'s own check
                failures.append(str(exc)[:300])
                continue
            answers[(i, run)].add(playlist)

    threads = [threading.Thread(target=keep_asking, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: any(run == new_run for _, run in list(answers)), "the standby to serve the new run")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures
    assert {run for _, run in answers} <= {old_run, new_run}
    assert all(len(playlists) == 1 for playlists in answers.values()), "one run, one question: one answer"
    assert all(answers[(i, old_run)] <= {old_answers[i][1]} for i in range(len(questions)))
    assert ask(client, questions[0])[0] == new_run
    assert router(app).primary_reads == 0


def test_reads_fall_back_to_the_primary_while_the_standby_is_stopped_and_return_after(app, pair, questions):
    from servers import start_existing, stop_cluster

    bindir, primary, standby_pgdata = pair.bindir, pair.primary, pair.standby_pgdata
    client = app.test_client()
    run = serving_song_run(primary)
    wait_for(lambda: caught_up(app), "the standby to catch up")
    stop_cluster(bindir, standby_pgdata)
    try:
        before = router(app).primary_reads
        for q in questions * 3:
            assert ask(client, q)[0] == run
        assert router(app).primary_reads == before + len(questions) * 3
        with router(app).connect() as conn:  # reads that fall back keep to one snapshot, and write nothing
            assert conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar() is False
            assert conn.execute(sa.text("SHOW transaction_isolation")).scalar() == "repeatable read"
            assert conn.execute(sa.text("SHOW transaction_read_only")).scalar() == "on"
        down = replica_status(app)
        assert down["healthy"] is False and "unreachable" in down["error"]
    finally:
        start_existing(bindir, standby_pgdata)
    reads = router(app).replicas[0].reads

    def standby_used_again() -> bool:
        ask(client, questions[0])  # a 200 each time, from whichever server
        return router(app).replicas[0].reads > reads

    wait_for(standby_used_again, "reads to go to the restarted standby", every=0.2)
    assert replica_status(app)["healthy"]
