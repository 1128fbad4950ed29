"""A radio answer as a playlist file: XSPF, JSPF and M3U8, one pure function each (answer dict in, bytes out).

The answer is the dict ``marconi.recommenders.song2vec.radio`` returns (``seeds``, ``playlist`` of ``{key, title,
artist, score, distance, ...}``, ``model_run``, ``variety``, ``size``), optionally with ``max_per_artist``. Every
function also takes ``base_url`` (this Marconi, e.g. ``http://127.0.0.1:5000``): a song without a Spotify id is
identified by its Marconi URL, ``<base_url>/radio?seed=<key>`` (the radio page opened on that song).

- **XSPF** (https://xspf.org/spec, version 1): XML built with ElementTree, so every title is escaped. A track's
  ``identifier`` is its Spotify URI or Marconi URL; only Spotify tracks get a ``location`` (a playable
  ``open.spotify.com`` link). A player resolves the others by ``creator`` and ``title``, as XSPF intends.
- **JSPF**: the JSON form of XSPF as ListenBrainz writes it (``{"playlist": {..., "track": [...]}}``, a track's
  ``identifier`` a list), with Marconi's own fields under ``extension``.
- **M3U8**: extended M3U in UTF-8: ``#EXTM3U``, then ``#EXTINF:-1,Artist - Title`` and a location line per song
  (the Spotify URL when the key is a Spotify track, else the Marconi URL).
"""

from __future__ import annotations

import json
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

XSPF_NS = "http://xspf.org/ns/0/"
CREATOR = "Marconi"
SPOTIFY_TRACK = re.compile(r"spotify:track:([0-9A-Za-z]{22})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # never inside an XML text, an M3U line or a filename
_XML_FORBIDDEN = re.compile("[\ufffe\uffff]")


@dataclass(frozen=True)
class PlaylistFormat:
    """One export format: its ``format=`` name, media type, file extension and writer."""

    name: str
    media_type: str
    extension: str
    write: Callable[..., bytes]


# ---------------------------------------------------------------------------------------------- shared parts
def spotify_id(key: str) -> str | None:
    """The Spotify track id of a ``spotify:track:<22 base62>`` key, else None (``yes_small:61`` has none)."""
    match = SPOTIFY_TRACK.fullmatch(key or "")
    return match.group(1) if match else None


def spotify_uri(key: str) -> str | None:
    """The Spotify URI (``spotify:track:<id>``) of a key that is one, else None."""
    track = spotify_id(key)
    return f"spotify:track:{track}" if track else None


def marconi_url(base_url: str, key: str) -> str:
    """This Marconi's stable URL for a song: the radio page opened on it."""
    return f"{base_url.rstrip('/')}/radio?seed={quote(key, safe=':')}"


def track_location(base_url: str, key: str) -> str:
    """Where to find a song: ``https://open.spotify.com/track/<id>`` for a Spotify track, else its Marconi URL."""
    track = spotify_id(key)
    return f"https://open.spotify.com/track/{track}" if track else marconi_url(base_url, key)


def radio_page_url(base_url: str, answer: dict) -> str:
    """The radio page that makes this radio again (the same query string the page bookmarks)."""
    params: list[tuple[str, str]] = [("seed", s["key"]) for s in answer.get("seeds", [])]
    params.append(("size", str(answer.get("size") or len(answer.get("playlist", [])))))
    if answer.get("max_per_artist"):
        params.append(("max_per_artist", str(answer["max_per_artist"])))
    if answer.get("variety"):
        params.append(("variety", f"{answer['variety']:g}"))
    return f"{base_url.rstrip('/')}/radio?{urlencode(params)}"


def clean(text: str | None) -> str:
    """``text`` on one line: control characters and line separators become single spaces (XML 1.0 cannot hold
    most of them; in M3U a line break would start a line of its own)."""
    return _XML_FORBIDDEN.sub("", _CONTROL.sub(" ", text or "")).strip()


def describe_seed(seed: dict) -> str:
    """``Title by Artist`` (or just the title or key)."""
    title = clean(seed.get("title")) or seed.get("key", "")
    artist = clean(seed.get("artist"))
    return f"{title} by {artist}" if artist else title


def _what_it_is_from(answer: dict) -> list[str]:
    """What a radio was made from, in the order asked: its seed songs, artists (by name) and tags ("tag 80s")."""
    return ([describe_seed(s) for s in answer.get("seeds") or []]
            + [clean(a["name"]) for a in answer.get("artists") or []]
            + [f"tag {clean(t['tag'])}" for t in answer.get("tags") or []])


def playlist_title(answer: dict) -> str:
    """A title for the playlist: ``Radio from Halo by Beyonce`` (``and 2 more`` for more seeds, artists or tags)."""
    sources = _what_it_is_from(answer)
    if not sources:
        return "Marconi radio"
    more = f" and {len(sources) - 1} more" if len(sources) > 1 else ""
    return f"Radio from {sources[0]}{more}"


def playlist_annotation(answer: dict) -> str:
    """One sentence on where the playlist comes from (all seeds, artists and tags, model run, variety)."""
    return (f"{len(answer.get('playlist', []))} songs from Marconi's song radio (model run {answer.get('model_run')}, "
            f"variety {answer.get('variety', 0):g}), seeded with {'; '.join(_what_it_is_from(answer))}.")


def filename(answer: dict, extension: str) -> str:
    """A download name such as ``marconi-radio-halo-beyonce.xspf``: ASCII letters, digits and hyphens only."""
    seeds = answer.get("seeds") or []
    words = f"{seeds[0].get('title', '')} {seeds[0].get('artist', '')}" if seeds else ""
    ascii_words = unicodedata.normalize("NFKD", words).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_words).strip("-")[:48].rstrip("-")
    return f"marconi-radio{'-' + slug if slug else ''}.{extension}"


def _now(created: datetime | None) -> str:
    """An xsd:dateTime in UTC, e.g. ``2026-01-02T03:04:05Z``."""
    return (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _track_fields(item: dict, base_url: str) -> dict:
    """The XSPF fields of one song: identifier, location (Spotify only), title, creator, info."""
    key = item["key"]
    return {"identifier": spotify_uri(key) or marconi_url(base_url, key),
            "location": track_location(base_url, key) if spotify_id(key) else None,
            "title": clean(item.get("title")) or key, "creator": clean(item.get("artist")),
            "info": marconi_url(base_url, key)}


def _marconi_track(item: dict) -> dict:
    """Marconi's own fields of a song (JSPF ``extension``, XSPF ``meta``)."""
    return {"key": item["key"], "score": item.get("score"), "distance": item.get("distance")}


def _marconi_playlist(answer: dict) -> dict:
    """Marconi's own fields of a radio (JSPF ``extension``, XSPF ``meta``)."""
    return {"seeds": [s["key"] for s in answer.get("seeds") or []], "ignored_seeds": answer.get("ignored_seeds", []),
            "model_run": answer.get("model_run"), "variety": answer.get("variety", 0),
            "max_per_artist": answer.get("max_per_artist"), "size": len(answer.get("playlist", []))}


def extension_uri(base_url: str) -> str:
    """The application URI naming Marconi's extension data (this Marconi's radio endpoint)."""
    return f"{base_url.rstrip('/')}/api/radio"


# -------------------------------------------------------------------------------------------------- formats
def to_xspf(answer: dict, base_url: str, created: datetime | None = None) -> bytes:
    """The radio as an XSPF version 1 document (UTF-8 XML; elements in the order the spec lists them).

    Marconi's own fields (seeds, model run, variety; a song's key and score) are ``meta`` elements whose ``rel`` is
    ``<base_url>/api/radio#<field>``: text as it is, numbers and lists as JSON.
    """
    ET.register_namespace("", XSPF_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs) -> ET.Element:
        node = ET.SubElement(parent, f"{{{XSPF_NS}}}{tag}", attrs)
        if text is not None:
            node.text = text
        return node

    root = ET.Element(f"{{{XSPF_NS}}}playlist", {"version": "1"})
    sub(root, "title", playlist_title(answer))
    sub(root, "creator", CREATOR)
    sub(root, "annotation", playlist_annotation(answer))
    sub(root, "info", radio_page_url(base_url, answer))
    sub(root, "date", _now(created))
    ext = extension_uri(base_url)
    for name, value in _marconi_playlist(answer).items():
        if value is not None:
            sub(root, "meta", value if isinstance(value, str) else json.dumps(value), rel=f"{ext}#{name}")
    track_list = sub(root, "trackList")
    for item in answer.get("playlist", []):
        fields = _track_fields(item, base_url)
        track = sub(track_list, "track")
        if fields["location"]:
            sub(track, "location", fields["location"])
        sub(track, "identifier", fields["identifier"])
        sub(track, "title", fields["title"])
        if fields["creator"]:
            sub(track, "creator", fields["creator"])
        sub(track, "info", fields["info"])
        for name, value in _marconi_track(item).items():
            if value is not None:
                sub(track, "meta", value if isinstance(value, str) else json.dumps(value), rel=f"{ext}#{name}")
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def to_jspf(answer: dict, base_url: str, created: datetime | None = None) -> bytes:
    """The radio as JSPF, the JSON form of XSPF as ListenBrainz writes it (UTF-8 JSON)."""
    ext = extension_uri(base_url)
    tracks = []
    for item in answer.get("playlist", []):
        fields = _track_fields(item, base_url)
        track = {"title": fields["title"], "creator": fields["creator"], "identifier": [fields["identifier"]],
                 "info": fields["info"]}
        if fields["location"]:
            track["location"] = [fields["location"]]
        track["extension"] = {ext: _marconi_track(item)}
        tracks.append(track)
    playlist = {"title": playlist_title(answer), "creator": CREATOR, "annotation": playlist_annotation(answer),
                "info": radio_page_url(base_url, answer), "date": _now(created),
                "extension": {ext: _marconi_playlist(answer)}, "track": tracks}
    return json.dumps({"playlist": playlist}, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"


def to_m3u8(answer: dict, base_url: str, created: datetime | None = None) -> bytes:
    """The radio as extended M3U in UTF-8: ``#EXTINF:-1,Artist - Title`` and a location line per song."""
    lines = ["#EXTM3U", f"#PLAYLIST:{playlist_title(answer)}"]
    for item in answer.get("playlist", []):
        title = clean(item.get("title")) or item["key"]
        artist = clean(item.get("artist"))
        lines.append(f"#EXTINF:-1,{artist} - {title}" if artist else f"#EXTINF:-1,{title}")
        lines.append(track_location(base_url, item["key"]))
    return ("\n".join(lines) + "\n").encode("utf-8")


FORMATS: dict[str, PlaylistFormat] = {f.name: f for f in (
    PlaylistFormat("xspf", "application/xspf+xml", "xspf", to_xspf),
    PlaylistFormat("jspf", "application/jspf+json", "jspf", to_jspf),
    PlaylistFormat("m3u8", "audio/x-mpegurl", "m3u8", to_m3u8),
)}
