"""Wikimedia Commons: download each class's image at a bounded width, with its licence, author and attribution.

For a batch of queued files (``commons_files``) one ``action=query&prop=imageinfo`` request returns the thumbnail URL
at ``iiurlwidth`` and the licence metadata (``extmetadata``); each thumbnail is then downloaded, validated through
``marconi.imageio`` (decodable, sane size) and stored with ``marconi.db.images.upsert_image``: the image row,
its bytes and the file's 'done' mark in one transaction. Requests carry ``maxlag=5``; the session honours
Retry-After on 429/503 and on maxlag errors.
"""

from __future__ import annotations

import html
import logging
import re
import time
from dataclasses import dataclass

import requests
import sqlalchemy as sa

from marconi import imageio
from marconi.db import scrape
from marconi.db.images import ImageRecord, upsert_image
from marconi.progress import progress as progress_bar
from scrapers import bounded_map, finish_summary
from scrapers.http import ScraperSession, get_json

log = logging.getLogger(__name__)

BATCH_MAX = 50  # titles per imageinfo request allowed to ordinary clients
MAXLAG = 5  # seconds; Wikimedia's recommended value for non-interactive clients
EXTMETADATA = "LicenseShortName|LicenseUrl|Artist|Attribution|AttributionRequired|Credit|UsageTerms"
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


class CommonsError(RuntimeError):
    """The Commons API failed after the session's retries or answered something unusable."""


class InvalidImage(ValueError):
    """Downloaded bytes that are not a usable image."""


@dataclass
class FileInfo:
    """What imageinfo says about one file."""

    title: str
    url: str  # the bounded-width thumbnail (or the original when it is smaller)
    page_url: str | None
    mime: str | None
    licence: str | None
    licence_url: str | None
    author: str | None
    attribution: str | None


@dataclass
class FileResult:
    """The outcome of one file: done (with a record), missing, invalid or failed."""

    status: str
    record: ImageRecord | None = None
    error: str | None = None


def strip_html(value) -> str | None:
    """Plain text of an extmetadata HTML value (tags removed, entities decoded, spaces collapsed)."""
    if value is None:
        return None
    text = _SPACE.sub(" ", html.unescape(_TAG.sub("", str(value)))).strip()
    return text or None


def _meta(ext: dict, key: str) -> str | None:
    item = ext.get(key)
    return strip_html(item.get("value")) if isinstance(item, dict) else None


def file_info(title: str, info: dict) -> FileInfo:
    """Build a FileInfo from one ``imageinfo`` entry; attribution falls back to 'author, licence, via Commons'."""
    ext = info.get("extmetadata") or {}
    author = _meta(ext, "Artist")
    licence = _meta(ext, "LicenseShortName")
    attribution = _meta(ext, "Attribution")
    if not attribution and (author or licence):
        attribution = ", ".join(p for p in (author, licence, "via Wikimedia Commons") if p)
    return FileInfo(title=title, url=info.get("thumburl") or info.get("url"), page_url=info.get("descriptionurl"),
                    mime=info.get("mime"), licence=licence, licence_url=_meta(ext, "LicenseUrl"), author=author,
                    attribution=attribution)


def parse_imageinfo(query: dict, names: list[str]) -> dict[str, FileInfo | str]:
    """Map each file name to its FileInfo, or to 'missing' / 'invalid' / 'absent' (not in the answer)."""
    normalized = {n.get("from"): n.get("to") for n in query.get("normalized") or []}
    pages = query.get("pages") or {}
    by_title = {p.get("title"): p for p in (pages.values() if isinstance(pages, dict) else pages)}
    out: dict[str, FileInfo | str] = {}
    for name in names:
        title = "File:" + name
        page = by_title.get(normalized.get(title, title))
        if page is None:
            out[name] = "absent"
        elif "invalid" in page:
            out[name] = "invalid"
        elif not page.get("imageinfo"):
            out[name] = "missing"  # no such file (a 'missing' page with imageinfo is a file of the shared repo)
        else:
            info = page["imageinfo"][0]
            out[name] = file_info(page["title"], info) if info.get("thumburl") or info.get("url") else "missing"
    return out


def fetch_imageinfo(session: ScraperSession, api_url: str, names: list[str], width: int) -> dict[str, FileInfo | str]:
    """One imageinfo request for up to BATCH_MAX files; raise CommonsError on failure."""
    params = {
        "action": "query", "format": "json", "prop": "imageinfo", "titles": "|".join("File:" + n for n in names),
        "iiprop": "url|size|mime|extmetadata", "iiurlwidth": width, "iiextmetadatafilter": EXTMETADATA,
        "iiextmetadatalanguage": "en", "maxlag": MAXLAG,
    }
    data = get_json(session, api_url, CommonsError, params=params)
    if not isinstance(data, dict):
        raise CommonsError("malformed response")
    if "error" in data:
        err = data["error"] if isinstance(data["error"], dict) else {}
        raise CommonsError(f"API error {err.get('code')}: {err.get('info')}")
    return parse_imageinfo(data.get("query") or {}, names)


def validate_image(data: bytes, max_pixels: int, max_bytes: int, min_side: int):
    """Decode and check downloaded bytes; return (PIL image, header info) or raise InvalidImage."""
    if len(data) > max_bytes:
        raise InvalidImage(f"{len(data)} bytes is more than the {max_bytes} limit")
    try:
        info = imageio.image_info(data)
        img = imageio.load_image(data, max_pixels)
    except imageio.ImageError as exc:
        raise InvalidImage(f"{exc.code}: {exc}") from None
    if min(img.size) < min_side:
        raise InvalidImage(f"{img.width}x{img.height} is smaller than {min_side} px")
    return img, info


def download_file(session: ScraperSession, row: dict, info: FileInfo | str, max_pixels: int, max_bytes: int,
                  min_side: int) -> FileResult:
    """Download, validate and build the ImageRecord of one file; API trouble becomes the result's status."""
    if isinstance(info, str):
        if info == "absent":
            return FileResult("failed", error="file not in the imageinfo answer")
        return FileResult(info, error=f"Commons says the file is {info}")
    try:
        resp = session.get(info.url)
    except requests.RequestException as exc:
        return FileResult("failed", error=f"{type(exc).__name__}: {exc}")
    if resp.status_code in (404, 410):
        return FileResult("missing", error=f"HTTP {resp.status_code} for {info.url}")
    if resp.status_code != 200:
        return FileResult("failed", error=f"HTTP {resp.status_code} for {info.url}")
    try:
        img, meta = validate_image(resp.content, max_pixels, max_bytes, min_side)
    except InvalidImage as exc:
        return FileResult("invalid", error=str(exc))
    record = ImageRecord(
        sha256=meta["sha256"], data=resp.content, thumbnail=imageio.make_thumbnail(img), width=img.width,
        height=img.height, format=meta["format"], source="commons", label=row["label"],
        description=row.get("description"), source_url=info.url, page_url=info.page_url,
        wikidata_item=row["qid"], licence=info.licence, licence_url=info.licence_url, author=info.author,
        attribution=info.attribution)
    return FileResult("done", record=record)


def _write_file(conn: sa.Connection, row: dict, result: FileResult) -> bool:
    """Store one file's outcome (and its image, when done) in the caller's transaction; True if a new image."""
    image_id, inserted = None, False
    if result.status == "done":
        image_id, inserted = upsert_image(conn, result.record)
    scrape.mark_file(conn, row["file_name"], result.status, result.error, image_id)
    return inserted


def scrape_images(engine: sa.Engine, session: ScraperSession, api_url: str, limit: int | None = None,
                  width: int = 640, batch_size: int = 20, concurrency: int = 2, max_attempts: int = 3,
                  max_pixels: int = 40_000_000, max_bytes: int = 16 * 1024 * 1024, min_side: int = 32,
                  max_failures_in_a_row: int = 10, progress: bool = True) -> dict:
    """Download the queued Commons files (``limit`` at most) and store them as images; return a summary.

    After ``max_failures_in_a_row`` failed files (an outage) the run stops; the rest stay pending.
    """
    if not 1 <= batch_size <= BATCH_MAX:
        raise ValueError(f"batch_size must be 1..{BATCH_MAX}")
    started = time.monotonic()
    with engine.connect() as conn:
        todo = scrape.files_to_fetch(conn, max_attempts, limit)
    summary = {"files": 0, "images": 0, "duplicates": 0, "missing": 0, "invalid": 0, "failed": 0, "stopped": None}
    in_a_row = 0
    bar = progress_bar(total=len(todo), unit="file", desc="commons images", enabled=progress)
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            try:
                infos = fetch_imageinfo(session, api_url, [r["file_name"] for r in batch], width)
            except CommonsError as exc:
                log.warning("imageinfo for %d files failed: %s", len(batch), exc)
                results = [(r, FileResult("failed", error=str(exc))) for r in batch]
            else:
                results = bounded_map(
                    lambda r, infos=infos: download_file(session, r, infos[r["file_name"]], max_pixels, max_bytes,
                                                         min_side),
                    batch, concurrency)
            for row, result in results:
                with engine.begin() as conn:
                    inserted = _write_file(conn, row, result)
                summary["files"] += 1
                if result.status == "done":
                    summary["images" if inserted else "duplicates"] += 1
                else:
                    summary[result.status] += 1
                    log.info("%s: %s (%s)", row["file_name"], result.status, result.error)
                bar.update(1)
                bar.set_postfix(images=summary["images"], failed=summary["failed"])
                in_a_row = in_a_row + 1 if result.status == "failed" else 0
                if in_a_row >= max_failures_in_a_row:
                    summary["stopped"] = f"{in_a_row} files failed in a row (last: {result.error}); run again later"
                    break
            if summary["stopped"]:
                break
    finally:
        bar.close()
    return finish_summary(summary, started, session, "images")
