"""Import files that are not what they should be (issue 13): bytes that are not UTF-8, text PostgreSQL cannot store,
digits of other scripts, JSON built to hurt the parser. Each stops with the file and line, never a traceback, and
`marconi import playlists` prints it as one line."""

import json
import os

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from marconi.cli import main
from marconi.importers import ImportFormatError
from marconi.importers.images import import_images
from marconi.importers.playlists import import_playlists

GOOD_SONGS = "0\tA\tx\n1\tB\ty\n2\tC\tz\n"
GOOD_TRAIN = "h1\nh2\n0 1\n1 2\n"


def _yes(tmp_path, songs: bytes | str = GOOD_SONGS, train: bytes | str = GOOD_TRAIN):
    folder = tmp_path / "set"
    folder.mkdir()
    for name, content in (("song_hash.txt", songs), ("train.txt", train)):
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    return folder


def _import_error(engine, path, fmt="yes") -> str:
    with pytest.raises(ImportFormatError) as exc:
        import_playlists(engine, path, fmt, progress=False)
    return str(exc.value)


# ------------------------------------------------------------------------------------------------ not UTF-8
def test_bad_utf8_in_song_hash_names_the_line_and_column(engine, tmp_path):
    folder = _yes(tmp_path, songs=b"0\tA\tx\n1\tB\ty\n2\tCaf\xe9\tz\n")  # Latin-1 e-acute
    message = _import_error(engine, folder)
    assert message == f"{folder}/song_hash.txt:3: not UTF-8 text: byte 0xe9 at column 6 (save the file as UTF-8)"


def test_bad_utf8_far_into_train_txt_names_the_exact_line(engine, tmp_path):
    """Text files are decoded in blocks of 8 kB: the line number must be the bad byte's, not the block's."""
    lines = ["0 1 2"] * 5000
    lines[4321] = "0 1 \xff"
    train = ("h1\nh2\n" + "\n".join(lines) + "\n").encode("latin-1")
    folder = _yes(tmp_path, train=train)
    assert _import_error(engine, folder).startswith(f"{folder}/train.txt:4324: not UTF-8 text: byte 0xff at column 5")


def test_bad_utf8_in_an_mpd_slice_names_the_line(engine, tmp_path):
    doc = json.dumps({"playlists": [{"pid": 0, "name": "x", "tracks": [
        {"pos": 0, "track_uri": "spotify:track:A", "track_name": "NAME", "artist_name": "X"}]}]}, indent=1)
    (tmp_path / "mpd.slice.0.json").write_bytes(doc.encode().replace(b"NAME", b"Caf\xe9"))
    line = doc[:doc.index("NAME")].count("\n") + 1
    assert _import_error(engine, tmp_path, "mpd").startswith(f"{tmp_path}/mpd.slice.0.json:{line}: not UTF-8 text")


def test_the_cli_prints_the_file_and_line_not_a_traceback(db_url, tmp_path):
    folder = _yes(tmp_path, train=b"h1\nh2\n0 1\n\xc3\x28\n")
    result = CliRunner().invoke(main, ["--database-url", db_url, "import", "playlists", str(folder)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[-1] == (f"Error: {folder}/train.txt:4: not UTF-8 text: byte 0xc3 at column 1 "
                                              "(save the file as UTF-8)")  # the last line, after any progress
    assert not isinstance(result.exception, UnicodeError)


def test_the_cli_reports_a_file_it_cannot_read(db_url, tmp_path):
    (tmp_path / "mpd.slice.0.json").mkdir()  # a folder where a slice file should be
    result = CliRunner().invoke(main, ["--database-url", db_url, "import", "playlists", "--format", "mpd",
                                       str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith(f"Error: {tmp_path}/mpd.slice.0.json: Is a directory")


# ------------------------------------------------------------------------------- text the database cannot store
def test_nul_in_a_yes_file_names_the_line(engine, tmp_path):
    folder = _yes(tmp_path, songs="0\tA\tx\n1\tB\x00\ty\n")
    assert _import_error(engine, folder) == f"{folder}/song_hash.txt:2: holds a NUL character, which PostgreSQL " \
                                            "cannot store"


@pytest.mark.parametrize("track, words", [
    ({"track_name": "\ud800"}, "'track_name' is not valid Unicode text (it holds a lone surrogate \\ud800)"),
    ({"artist_name": "a\x00b"}, "'artist_name' holds a NUL character, which PostgreSQL cannot store"),
    ({"track_name": {"nested": 1}}, "'track_name' must be a string or null"),
    ({"duration_ms": "long"}, "'duration_ms' must be an integer or null"),
    ({"pos": True}, "'pos' must be an integer"),
])
def test_mpd_values_that_cannot_be_stored_name_the_playlist(engine, tmp_path, track, words):
    doc = {"playlists": [{"pid": 7, "name": "x", "tracks": [{"pos": 0, "track_uri": "spotify:track:A", **track}]}]}
    (tmp_path / "mpd.slice.0.json").write_text(json.dumps(doc), encoding="utf-8")  # ensure_ascii: "\ud800" escaped
    assert _import_error(engine, tmp_path, "mpd") == f"{tmp_path}/mpd.slice.0.json: playlist pid '7': {words}"


@pytest.mark.parametrize("text, words", [
    ('{"playlists": ' + "[" * 100_000, "invalid JSON: nested too deeply"),
    ('{"playlists": [], "n": 1' + "0" * 5000 + "}", "invalid JSON: Exceeds the limit"),
])
def test_mpd_json_built_to_hurt_the_parser(engine, tmp_path, text, words):
    (tmp_path / "mpd.slice.0.json").write_text(text, encoding="utf-8")
    assert words in _import_error(engine, tmp_path, "mpd")


# ------------------------------------------------------------------------------------------ digits of other scripts
@pytest.mark.parametrize("songs, train, where", [
    ("0\tA\tx\n١\tB\ty\n", GOOD_TRAIN, "song_hash.txt:2: song index '١' is not an integer"),
    (GOOD_SONGS, "h1\nh2\n0 ١\n", "train.txt:3: song index '١' is not an integer"),
    (GOOD_SONGS, "h1\nh2\n0 ²\n", "train.txt:3: song index '²' is not an integer"),  # isdigit(), yet not int()
])
def test_song_indices_are_ascii_digits(engine, tmp_path, songs, train, where):
    folder = _yes(tmp_path, songs=songs, train=train)
    assert _import_error(engine, folder) == f"{folder}/{where}"


# ------------------------------------------------------------------------------------------------- image folders
def test_image_files_whose_names_are_not_utf8_are_skipped_and_reported(engine, emptied, tmp_path, data_dir):
    photo = next((data_dir / "images" / "caltech101" / "cup").glob("*.jpg")).read_bytes()
    root = tmp_path / "photos"
    (root / "cup").mkdir(parents=True)
    (root / "cup" / "good.jpg").write_bytes(photo)
    bad_folder = os.path.join(os.fsencode(root), b"caf\xe9")  # a Latin-1 folder name: the label would be "caf\udce9"
    os.mkdir(bad_folder)
    with open(os.path.join(bad_folder, b"x.jpg"), "wb") as f:
        f.write(photo)
    counts = import_images(engine, root, progress=False)
    assert (counts["seen"], counts["inserted"], counts["failed"]) == (2, 1, 1)
    [(where, reason)] = counts["failures"]
    assert where == f"{root}/caf\\xe9/x.jpg" and "not UTF-8" in reason
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT label FROM images")).scalars().all() == ["cup"]


def test_a_source_that_is_not_text_is_refused(engine, tmp_path):
    from marconi.errors import BadRequest

    folder = _yes(tmp_path)
    with pytest.raises(BadRequest, match="the source given is not valid Unicode text"):
        import_playlists(engine, folder, "yes", source="set\udce9", progress=False)


# ------------------------------------------------------------------------------------------------ all or nothing
def test_a_bad_line_far_into_a_file_leaves_nothing_imported(engine, emptied, tmp_path):
    """Playlists are written in batches, but in one transaction: a bad line after several batches writes nothing,
    tracks included, and the fixed file then imports whole."""
    lines = ["0 1 2"] * 50
    lines[37] = "0 1 \xff"
    folder = _yes(tmp_path, train=("h1\nh2\n" + "\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(ImportFormatError):
        import_playlists(engine, folder, "yes", progress=False, batch_size=5)  # seven batches before the bad line
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM playlists")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM tracks")).scalar() == 0
    (folder / "train.txt").write_text("h1\nh2\n" + "\n".join(["0 1 2"] * 50) + "\n")
    summary = import_playlists(engine, folder, "yes", progress=False, batch_size=5)
    assert summary.playlists_seen == 50 and summary.tracks == 3


def test_an_import_killed_mid_way_leaves_nothing_behind(db_url, engine, emptied, data_dir):
    """kill -9 after several batches are written (their row locks are held) and before the commit: the database is as
    it was, and the next import of the same file brings in every playlist."""
    import signal
    import subprocess
    import sys
    import time

    folder = data_dir / "playlists" / "yes_small"
    written = sa.text("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                      "WHERE c.relname = 'playlist_tracks' AND l.mode = 'RowExclusiveLock'")
    proc = subprocess.Popen([sys.executable, "-m", "marconi", "import", "playlists", str(folder), "--batch-size",
                             "500"], env=dict(os.environ, DATABASE_URL=db_url), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        with engine.connect() as conn:
            while not conn.execute(written).scalar():  # the import has written its first batch of playlist rows
                assert proc.poll() is None, proc.stderr.read()[-2000:]
                assert time.monotonic() < deadline, "the import wrote nothing within 120 s"
                time.sleep(0.05)
        time.sleep(1.0)  # several more batches
        assert proc.poll() is None, "the import finished before it could be killed: use a bigger file"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM playlists")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM tracks")).scalar() == 0
    summary = import_playlists(engine, folder, "yes", progress=False)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM playlists")).scalar() == summary.inserted > 39_000
