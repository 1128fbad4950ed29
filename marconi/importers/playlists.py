"""Playlist importers: the Cornell yes.com format and Spotify Million Playlist Dataset JSON slices.

Each parser yields ``Track`` and ``Playlist`` objects; ``import_playlists`` writes them in batches inside one
transaction (a file is imported all or nothing), through the idempotent upserts of marconi.db.tracks and
marconi.db.playlists. Importing the same files twice changes nothing. A file that is not UTF-8, or not in the
format, stops the import with an ImportFormatError naming the file and line (for MPD JSON, the line of a syntax
error or of bytes that are not UTF-8, else the playlist).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from marconi.db.playlists import Playlist, upsert_playlists
from marconi.db.tags import replace_track_tags
from marconi.db.tracks import Track, upsert_tracks
from marconi.errors import BadRequest
from marconi.importers import ImportFormatError, printable_path, storable_text, text_lines, utf8_text
from marconi.progress import progress as progress_bar

log = logging.getLogger(__name__)

FORMATS = ("yes", "mpd")
_INDEX = re.compile(r"-?[0-9]+")  # a song index: ASCII digits (int() would also read "١٢" and " 1_2")


def _unescape_yes(text: str) -> str:
    return text.replace("\\/", "/").strip()


def read_yes_songs(path: Path, prefix: str) -> dict[int, Track]:
    """Parse a yes.com ``song_hash.txt`` (index, title, artist, tab-separated) into {index: Track}."""
    songs: dict[int, Track] = {}
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ImportFormatError(path, lineno, f"expected 'index<TAB>title<TAB>artist', got {line[:80]!r}")
        if not _INDEX.fullmatch(parts[0].strip()):
            raise ImportFormatError(path, lineno, f"song index {parts[0][:40]!r} is not an integer")
        idx = int(parts[0])
        title = _unescape_yes(parts[1]) or f"song {idx}"
        artist = _unescape_yes(parts[2]) if len(parts) > 2 else ""
        songs[idx] = Track(key=f"{prefix}:{idx}", title=title, artist=artist)
    if not songs:
        raise ImportFormatError(path, None, "no songs found")
    return songs


def read_yes_playlists(path: Path, prefix: str, n_songs: int) -> Iterator[tuple[int, list[int]]]:
    """Yield (playlist number, [song indices]) from a yes.com ``train.txt`` (two header lines, then one a line).

    Playlist numbers count from 0 at the first line after the header, so the same file always gives the same keys.
    """
    for lineno, line in text_lines(path):
        if lineno <= 2:
            continue
        fields = line.split()
        bad = next((x for x in fields if not _INDEX.fullmatch(x)), None)
        if bad is not None:
            raise ImportFormatError(path, lineno, f"song index {bad[:40]!r} is not an integer")
        songs = [int(x) for x in fields]
        for s in songs:
            if not 0 <= s < n_songs:
                raise ImportFormatError(path, lineno, f"song index {s} is not in song_hash.txt (0..{n_songs - 1})")
        yield lineno - 3, songs


NO_TAG = "NONE"  # tag_hash.txt's name for "no tag"


def read_yes_tags(directory: Path, songs: dict[int, Track]) -> dict[str, list[str]] | None:
    """Read yes.com ``tags.txt`` (line i: tag ids of song i, or '#') and ``tag_hash.txt`` ('id, name') into
    {track key: [tag names]}; None when the folder has no tags. Songs with no tag get [] (so a re-import that
    drops a tag drops it in the database too)."""
    tags_path, hash_path = Path(directory) / "tags.txt", Path(directory) / "tag_hash.txt"
    if not tags_path.is_file() and not hash_path.is_file():
        return None
    for p in (tags_path, hash_path):
        if not p.is_file():
            raise ImportFormatError(p, None, "missing: tags come as tags.txt and tag_hash.txt together")
    names: dict[int, str] = {}
    for lineno, line in text_lines(hash_path):
        if not line.strip():
            continue
        number, sep, name = line.partition(",")
        if not sep or not _INDEX.fullmatch(number.strip()) or not name.strip():
            raise ImportFormatError(hash_path, lineno, f"expected 'tag id, name', got {line[:80]!r}")
        names[int(number)] = name.strip()
    out: dict[str, list[str]] = {}
    for lineno, line in text_lines(tags_path):
        index = lineno - 1
        fields = [] if line.strip() == "#" else line.split()
        bad = next((x for x in fields if not _INDEX.fullmatch(x) or int(x) not in names), None)
        if bad is not None:
            raise ImportFormatError(tags_path, lineno, f"tag id {bad[:40]!r} is not in tag_hash.txt")
        if index in songs:
            out[songs[index].key] = [names[int(x)] for x in fields if names[int(x)] != NO_TAG]
    return out


def parse_yes(directory: Path, prefix: str | None = None) -> tuple[list[Track], Iterator[Playlist], int]:
    """Return (tracks, playlists iterator, number of lines) for a yes.com directory."""
    directory = Path(directory)
    prefix = prefix or directory.name
    if storable_text(prefix):
        raise ImportFormatError(directory, None, "the folder's name is not UTF-8 text, and it would prefix every key: "
                                                 "rename the folder or give a source (--source)")
    song_path, train_path = directory / "song_hash.txt", directory / "train.txt"
    for p in (song_path, train_path):
        if not p.is_file():
            raise ImportFormatError(p, None, "missing: a yes.com directory holds train.txt and song_hash.txt")
    songs = read_yes_songs(song_path, prefix)
    n_songs = max(songs) + 1
    with open(train_path, "rb") as fh:  # counted as bytes: the lines are decoded (and checked) as they are read
        total = max(sum(1 for _ in fh) - 2, 0)

    def playlists() -> Iterator[Playlist]:
        for number, indices in read_yes_playlists(train_path, prefix, n_songs):
            missing = [i for i in indices if i not in songs]
            if missing:
                raise ImportFormatError(train_path, number + 3, f"song index {missing[0]} is not in song_hash.txt")
            if not indices:
                continue
            yield Playlist(key=f"{prefix}:pl:{number}", source=prefix, name=None,
                           track_keys=[songs[i].key for i in indices])

    return list(songs.values()), playlists(), total


def parse_mpd(directory: Path) -> tuple[list[Track], Iterator[Playlist], int]:
    """Return (tracks, playlists iterator, number of playlists) for Million Playlist Dataset slice files."""
    directory = Path(directory)
    files = sorted(directory.glob("*.json")) if directory.is_dir() else [directory]
    if not files:
        raise ImportFormatError(directory, None, "no mpd.slice.*.json files found")
    tracks: dict[str, Track] = {}
    slices = []
    for path in files:
        doc = _read_mpd_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("playlists"), list):
            raise ImportFormatError(path, None, "not an MPD slice: expected an object with a 'playlists' list")
        for i, pl in enumerate(doc["playlists"]):
            if not isinstance(pl, dict) or "pid" not in pl or not isinstance(pl.get("tracks"), list):
                raise ImportFormatError(path, None, f"playlists[{i}]: expected 'pid' and a 'tracks' list")
            where = f"playlist pid {str(pl['pid'])[:40]!r}"
            _check_mpd_fields(path, where, pl, {"pid": (int, str), "name": (str, type(None))})
            for t in pl["tracks"]:
                uri = t.get("track_uri") if isinstance(t, dict) else None
                if not isinstance(uri, str) or not uri.startswith("spotify:track:"):
                    raise ImportFormatError(path, None, f"{where}: track without a spotify track_uri")
                _check_mpd_fields(path, where, t, MPD_TRACK_FIELDS)
                tracks.setdefault(uri, Track(key=uri, title=t.get("track_name") or uri,
                                             artist=t.get("artist_name") or "", duration_ms=t.get("duration_ms")))
        slices.append(doc["playlists"])

    def playlists() -> Iterator[Playlist]:
        for pls in slices:
            for pl in pls:
                ordered = sorted(pl["tracks"], key=lambda t: t.get("pos", 0))
                yield Playlist(key=f"mpd:{pl['pid']}", source="mpd", name=pl.get("name"),
                               track_keys=[t["track_uri"] for t in ordered])

    return list(tracks.values()), playlists(), sum(len(s) for s in slices)


# fields of an MPD track that are read, and the JSON types each may have (bool is an int to Python: refused below)
MPD_TRACK_FIELDS = {"track_uri": (str,), "track_name": (str, type(None)), "artist_name": (str, type(None)),
                    "duration_ms": (int, type(None)), "pos": (int,)}


def _read_mpd_json(path: Path):
    """One MPD slice file parsed; ImportFormatError with the line for bytes that are not UTF-8 or a syntax error."""
    text = utf8_text(path, path.read_bytes())
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise ImportFormatError(path, None, "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ImportFormatError(path, None, f"invalid JSON: {exc}") from None


def _check_mpd_fields(path: Path, where: str, obj: dict, fields: dict[str, tuple[type, ...]]) -> None:
    """The fields of ``obj`` that are read have the JSON types they should, and their text can be stored."""
    for name, kinds in fields.items():
        if name not in obj:
            continue
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ImportFormatError(path, None, f"{where}: '{name}' must be "
                                                f"{' or '.join(_JSON_KIND[k] for k in kinds)}")
        problem = storable_text(value) if isinstance(value, str) else None
        if problem:
            raise ImportFormatError(path, None, f"{where}: '{name}' {problem}")


_JSON_KIND = {str: "a string", int: "an integer", type(None): "null"}


@dataclass
class ImportSummary:
    """What an import did."""

    tracks: int = 0
    playlists_seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    tags: int = 0
    tagged_tracks: int = 0


def import_playlists(engine: sa.Engine, path: Path, format: str = "yes", source: str | None = None,
                     batch_size: int = 5000, progress: bool = True) -> ImportSummary:
    """Import playlists from ``path`` in ``format`` ('yes' or 'mpd'); idempotent; all or nothing (one transaction,
    written in batches of ``batch_size`` playlists)."""
    problem = storable_text(source) if source else None
    if problem:
        raise BadRequest(f"the source given {problem}")
    song_tags = None
    if format == "yes":
        tracks, playlists, total = parse_yes(Path(path), source)
        song_tags = read_yes_tags(Path(path), {int(t.key.rsplit(":", 1)[1]): t for t in tracks})
    elif format == "mpd":
        tracks, playlists, total = parse_mpd(Path(path))
    else:
        raise ValueError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    summary = ImportSummary(tracks=len(tracks))
    bar = progress_bar(total=total, unit="playlist", desc="importing", enabled=progress)
    # one transaction for the whole file: a bad line, an error or a kill at any point leaves the database as it was
    with engine.begin() as conn:
        for i in range(0, len(tracks), 20000):
            upsert_tracks(conn, tracks[i: i + 20000])
        if song_tags is not None:
            summary.tags = replace_track_tags(conn, song_tags)["tags"]
            summary.tagged_tracks = sum(1 for names in song_tags.values() if names)
        batch: list[Playlist] = []

        def flush() -> None:
            c = upsert_playlists(conn, batch)
            summary.inserted += c["inserted"]
            summary.updated += c["updated"]
            summary.unchanged += c["unchanged"]
            bar.update(len(batch))
            batch.clear()

        try:
            for pl in playlists:
                summary.playlists_seen += 1
                batch.append(pl)
                if len(batch) >= batch_size:
                    flush()
            if batch:
                flush()
        finally:
            bar.close()  # also when a bad line stops the import, so the error is printed on a line of its own
    log.info("upserted %d tracks from %s", len(tracks), printable_path(path))
    log.info("playlists: %d seen, %d inserted, %d updated, %d unchanged", summary.playlists_seen, summary.inserted,
             summary.updated, summary.unchanged)
    return summary
