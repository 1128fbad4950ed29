"""Playlist import into a real PostgreSQL: yes.com and MPD formats, idempotence, clear errors."""

import json

import pytest
import sqlalchemy as sa

from marconi.importers import ImportFormatError
from marconi.importers.playlists import import_playlists


def _write_yes(path, songs, playlists):
    path.mkdir(parents=True, exist_ok=True)
    (path / "song_hash.txt").write_text("".join(f"{i}\t{t}\t{a}\n" for i, t, a in songs), encoding="utf-8")
    body = "".join(" ".join(map(str, p)) + " \n" for p in playlists)
    (path / "train.txt").write_text("h1\nh2\n" + body, encoding="utf-8")


def _rows(engine):
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1, 2")).all()
                for t in ("tracks", "playlists", "playlist_tracks")}


def test_yes_import_real_data_is_complete_and_idempotent(engine, data_dir):
    src = data_dir / "playlists" / "yes_small"
    first = import_playlists(engine, src, "yes", progress=False)
    lines = (src / "train.txt").read_text().splitlines()[2:]
    non_empty = [line.split() for line in lines if line.split()]
    assert first.inserted == len(non_empty)
    with engine.connect() as conn:
        n_slots = conn.execute(sa.text("SELECT count(*) FROM playlist_tracks")).scalar()
        n_tracks = conn.execute(sa.text("SELECT count(*) FROM tracks")).scalar()
        # the `\/` escapes are undone and trailing spaces stripped
        title = conn.execute(sa.text("SELECT title FROM tracks WHERE key = 'yes_small:0'")).scalar()
        # order is kept: playlist 0 is the first line after the header
        first_pl = conn.execute(sa.text(
            "SELECT array_agg(t.key ORDER BY pt.position) FROM playlist_tracks pt JOIN playlists p ON p.id = "
            "pt.playlist_id JOIN tracks t ON t.id = pt.track_id WHERE p.key = 'yes_small:pl:0'")).scalar()
    assert n_slots == sum(len(p) for p in non_empty)
    assert n_tracks == len((src / "song_hash.txt").read_text().splitlines())
    assert title == "Gucci Time (w/ Swizz Beatz)"
    assert first_pl == [f"yes_small:{i}" for i in lines[0].split()]

    before = _rows(engine)
    again = import_playlists(engine, src, "yes", progress=False)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, len(non_empty))
    assert _rows(engine) == before


def test_changed_playlist_is_updated_in_place(new_database, base_config, tmp_path):
    from marconi.db import make_engine

    eng = make_engine(base_config, url=new_database())
    songs = [(0, "A", "x"), (1, "B", "y"), (2, "C\\/D ", "z")]
    _write_yes(tmp_path / "set", songs, [[0, 1], [1, 2]])
    import_playlists(eng, tmp_path / "set", "yes", progress=False)
    _write_yes(tmp_path / "set", songs, [[0, 1], [2, 1, 0]])
    s = import_playlists(eng, tmp_path / "set", "yes", progress=False)
    assert (s.inserted, s.updated, s.unchanged) == (0, 1, 1)
    with eng.connect() as conn:
        order = conn.execute(sa.text(
            "SELECT array_agg(t.title ORDER BY pt.position) FROM playlist_tracks pt JOIN playlists p ON "
            "p.id = pt.playlist_id JOIN tracks t ON t.id = pt.track_id WHERE p.key = 'set:pl:1'")).scalar()
    assert order == ["C/D", "B", "A"]
    eng.dispose()


@pytest.mark.parametrize("songs_text, train_text, where", [
    ("0\tA\tx\nnot-a-number\tB\ty\n", "h\nh\n0\n", "song_hash.txt:2"),
    ("0\tA\tx\n", "h\nh\n0\n0 7\n", "train.txt:4"),
    ("0\tA\tx\n", "h\nh\n0 zero\n", "train.txt:3"),
    ("0 A x\n", "h\nh\n0\n", "song_hash.txt:1"),
])
def test_bad_yes_files_name_file_and_line(engine, tmp_path, songs_text, train_text, where):
    (tmp_path / "song_hash.txt").write_text(songs_text)
    (tmp_path / "train.txt").write_text(train_text)
    with pytest.raises(ImportFormatError) as exc:
        import_playlists(engine, tmp_path, "yes", progress=False)
    assert where in str(exc.value)


def test_missing_yes_file_is_reported(engine, tmp_path):
    with pytest.raises(ImportFormatError, match="song_hash.txt"):
        import_playlists(engine, tmp_path, "yes", progress=False)


def test_mpd_slice_import(engine, tmp_path):
    slice_ = {"info": {"slice": "0-1"}, "playlists": [
        {"pid": 0, "name": "Röck ⚡", "tracks": [
            {"pos": 1, "track_uri": "spotify:track:B", "track_name": "Bé", "artist_name": "Ünï", "duration_ms": 2000},
            {"pos": 0, "track_uri": "spotify:track:A", "track_name": "A", "artist_name": "X", "duration_ms": 1000}]},
        {"pid": 1, "name": "two", "tracks": [
            {"pos": 0, "track_uri": "spotify:track:A", "track_name": "A", "artist_name": "X", "duration_ms": 1000}]},
    ]}
    (tmp_path / "mpd.slice.0-1.json").write_text(json.dumps(slice_, ensure_ascii=False), encoding="utf-8")
    s = import_playlists(engine, tmp_path, "mpd", progress=False)
    assert s.inserted == 2 and s.tracks == 2
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT p.name, array_agg(t.key ORDER BY pt.position) FROM playlists p JOIN playlist_tracks pt ON "
            "pt.playlist_id = p.id JOIN tracks t ON t.id = pt.track_id WHERE p.key = 'mpd:0' GROUP BY p.name")).one()
        artist = conn.execute(sa.text("SELECT artist FROM tracks WHERE key = 'spotify:track:B'")).scalar()
    assert row == ("Röck ⚡", ["spotify:track:A", "spotify:track:B"])
    assert artist == "Ünï"
    assert import_playlists(engine, tmp_path, "mpd", progress=False).unchanged == 2


def test_bad_mpd_json_is_reported(engine, tmp_path):
    (tmp_path / "mpd.slice.bad.json").write_text('{"playlists": [ {"pid": 1, ')
    with pytest.raises(ImportFormatError, match="mpd.slice.bad.json:1: invalid JSON"):
        import_playlists(engine, tmp_path, "mpd", progress=False)


def test_copy_rows_sends_in_chunks_with_escapes(engine):
    from marconi.db.copy import copy_rows

    rows = [(i, f"tab\there {i}", None if i % 3 == 0 else f"back\\slash\nnewline {i}") for i in range(10)]
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE _c (i int, a text, b text) ON COMMIT DROP"))
        assert copy_rows(conn, "_c", ("i", "a", "b"), rows, chunk_rows=3) == 10
        got = conn.execute(sa.text("SELECT i, a, b FROM _c ORDER BY i")).all()
    assert [tuple(r) for r in got] == rows
