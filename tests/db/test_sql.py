"""SQL access done right: the example queries run as the read-only role, which cannot write or read secrets."""

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from marconi.config import REPO_ROOT
from marconi.db import reader_url

EXAMPLES = sorted((REPO_ROOT / "sql" / "examples").glob("*.sql"))


@contextmanager
def _reader(url):
    """An autocommit connection as marconi_reader (closing, not psycopg2's transaction context manager)."""
    conn = psycopg2.connect(reader_url(url))
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_as_reader_and_answers(path: Path, trained_url, images_engine):
    text = path.read_text()
    assert text.lstrip().startswith("--"), "every example starts with a comment saying what it answers"
    with _reader(trained_url[0]) as conn, conn.cursor() as cur:
        cur.execute(text)
        rows = cur.fetchall()
    assert rows, f"{path.name} returned nothing"


def test_radio_example_matches_the_function(trained_url):
    with _reader(trained_url[0]) as conn, conn.cursor() as cur:
        cur.execute((REPO_ROOT / "sql" / "examples" / "radio_from_seeds.sql").read_text())
        rows = cur.fetchall()
    artists = [r[2].lower() for r in rows]
    assert len(rows) == 15 and len(set(artists)) == 15
    assert not {"halo", "bad romance"} & {r[1].lower() for r in rows}


@pytest.mark.parametrize("statement", [
    "INSERT INTO tracks (key, title) VALUES ('x:1', 'x')",
    "UPDATE tracks SET title = 'x'",
    "DELETE FROM playlists",
    "CREATE TABLE mine (id int)",
    "DROP TABLE tracks",
    "TRUNCATE song_vectors",
])
def test_reader_cannot_write(trained_url, statement):
    with _reader(trained_url[0]) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.Error) as exc:
            cur.execute(statement)
    assert exc.value.pgcode in ("25006", "42501", "42P01")  # read-only transaction / insufficient privilege


def test_reader_cannot_write_even_after_lifting_read_only(trained_url):
    with _reader(trained_url[0]) as conn, conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("INSERT INTO tracks (key, title) VALUES ('x:1', 'x')")


@pytest.mark.parametrize("statement", [
    "SELECT * FROM commons_files",
    "SELECT * FROM spotify_playlist_fetch",
    "SELECT * FROM model_artifacts",
    "SELECT data FROM image_blobs",
    "SELECT rolpassword FROM pg_authid",
    "SELECT pg_read_file('postgresql.conf')",
    "COPY tracks TO PROGRAM 'id'",
])
def test_reader_cannot_read_secrets_or_files(trained_url, statement):
    with _reader(trained_url[0]) as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.Error) as exc:
            cur.execute(statement)
    assert exc.value.pgcode in ("42501", "25006")


def test_reader_defaults(trained_url):
    with _reader(trained_url[0]) as conn, conn.cursor() as cur:
        cur.execute("SHOW statement_timeout")
        timeout = cur.fetchone()[0]
        cur.execute("SHOW default_transaction_read_only")
        ro = cur.fetchone()[0]
    assert (timeout, ro) == ("30s", "on")


def test_reader_keeps_access_after_a_model_swap(new_database, base_config, tmp_path):
    from marconi.db import make_engine
    from marconi.importers.playlists import import_playlists
    from marconi.training.song2vec import train_songs

    d = tmp_path / "tiny"
    d.mkdir()
    (d / "song_hash.txt").write_text("".join(f"{i}\tsong {i}\tartist {i % 7}\n" for i in range(40)))
    (d / "train.txt").write_text("h\nh\n" + "".join(" ".join(str((j * 3 + k) % 40) for k in range(6)) + "\n"
                                                   for j in range(200)))
    url = new_database()
    eng = make_engine(base_config, url=url)
    import_playlists(eng, d, progress=False)
    for _ in range(2):
        train_songs(eng, progress=False, epochs=2, min_count=1, workers=1)
    eng.dispose()
    with _reader(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM song_vectors")
        assert cur.fetchone()[0] == 40
        cur.execute("SELECT count(*) FROM radio(ARRAY['tiny:1'], 5)")
        assert cur.fetchone()[0] == 5


def test_marconi_sql_command_runs_as_reader(trained_url):
    env_cmd = [sys.executable, "-m", "marconi", "--database-url", trained_url[0], "sql", "-c",
               "SELECT current_user, count(*) FROM tracks"]
    out = subprocess.run(env_cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "marconi_reader" in out.stdout
    denied = subprocess.run(env_cmd[:-1] + ["DELETE FROM tracks"], capture_output=True, text=True, timeout=120)
    assert denied.returncode != 0 and "read-only" in denied.stderr


def test_radio_walkthrough_runs_in_psql_and_agrees_with_the_api(trained_url, trained_engine):
    """sql/radio.sql (the documented radio question) runs as the reader and gives the playlist the API gives."""
    from marconi.cli.sql import find_psql
    from marconi.recommenders.request import RadioRequest
    from marconi.recommenders.song2vec import radio

    with trained_engine.connect() as conn:
        seeds = conn.execute(sa.text("SELECT t.key FROM tracks t JOIN song_vectors sv ON sv.track_id = t.id "
                                     "ORDER BY t.id LIMIT 2 OFFSET 10")).scalars().all()
        api = radio(conn, RadioRequest(seeds=tuple(seeds), size=25, max_per_artist=2, variety=0.25))
    out = subprocess.run([find_psql(), reader_url(trained_url[0]), "-X", "-q", "-A", "-t", "-F", "|",
                          "-v", "ON_ERROR_STOP=1", "-v", "seeds={" + ",".join(seeds) + "}",
                          "-f", str(REPO_ROOT / "sql" / "radio.sql")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [line.split("|") for line in out.stdout.splitlines() if line]
    candidates, playlist = lines[:35], lines[35:]
    assert len(candidates) == 35 and {c[0] for c in candidates} == {str(api["model_run"])}
    assert [p[0] for p in playlist] == [p["key"] for p in api["playlist"]]
