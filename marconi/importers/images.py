"""Image files on disk → the ``images`` and ``image_blobs`` tables (a folder tree ``<label>/<file>``).

Each file is fully decoded (:mod:`marconi.imageio`) before it is stored, with a thumbnail, keyed by its sha256.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import sqlalchemy as sa

from marconi.config import Config
from marconi.db.images import ImageRecord, upsert_image
from marconi.errors import BadRequest
from marconi.imageio import ImageError, image_info, load_image, make_thumbnail
from marconi.importers import ImportFormatError, printable_path, storable_text
from marconi.progress import progress as progress_bar

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
MAX_IMPORT_BYTES = 20 * 1024 * 1024


# --------------------------------------------------------------------------------------------------- import
def image_files(directory: Path) -> list[Path]:
    """All image files below ``directory`` (following symlinked folders), sorted."""
    found = []
    for root, _, names in os.walk(directory, followlinks=True):
        found += [Path(root) / n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


def prepare_record(data: bytes, max_pixels: int, **meta) -> ImageRecord:
    """Validate image bytes (fully decoded) and build an ImageRecord with a thumbnail; raise ImageError if bad."""
    info = image_info(data)
    img = load_image(data, max_pixels=max_pixels)
    return ImageRecord(sha256=info["sha256"], data=data, thumbnail=make_thumbnail(img), width=info["width"],
                       height=info["height"], format=info["format"], **meta)


def import_images(engine: sa.Engine, directory: Path, config: Config | None = None, source: str = "import",
                  licence: str | None = None, licence_url: str | None = None, attribution: str | None = None,
                  batch_size: int = 50, progress: bool = True) -> dict:
    """Import a folder tree ``<label>/<file>`` of images; return counts {seen, inserted, duplicates, failed}.

    Idempotent (images are keyed by sha256 and stored once); unreadable files are skipped and reported, never
    fatal, and so are files whose name (the label, the stored source) is not UTF-8. Each image is written with its
    bytes in the same transaction.
    """
    config = config or Config()
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{printable_path(directory)} is not a folder of <label>/<image> files")
    if storable_text(directory.name):
        raise ImportFormatError(directory, None, "the folder's name is not UTF-8 text (it is stored with every "
                                                 "image): rename it")
    for name, value in (("source", source), ("licence", licence), ("licence_url", licence_url),
                        ("attribution", attribution)):
        problem = storable_text(value) if isinstance(value, str) else None
        if problem:
            raise BadRequest(f"the {name} given {problem}")
    files = image_files(directory)
    counts = {"seen": 0, "inserted": 0, "duplicates": 0, "failed": 0, "failures": []}
    if licence is None and directory.name == "caltech101":
        licence, licence_url = "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"
        attribution = attribution or "Caltech 101 (Fei-Fei Li, Rob Fergus, Pietro Perona, CVPR-W 2004)"
    bar = progress_bar(files, unit="img", desc="importing images", enabled=progress)
    pending: list[ImageRecord] = []

    def flush():
        with engine.begin() as conn:
            for rec in pending:
                _, inserted = upsert_image(conn, rec)
                counts["inserted" if inserted else "duplicates"] += 1
        pending.clear()

    def skip(path: Path, reason: str) -> None:
        counts["failed"] += 1
        counts["failures"].append((printable_path(path), reason))
        log.warning("skipped %s: %s", printable_path(path), reason)

    for path in bar:
        counts["seen"] += 1
        rel = path.relative_to(directory)
        label = rel.parts[0] if len(rel.parts) > 1 else None
        if storable_text(rel.as_posix()):
            skip(path, "the file name is not UTF-8 text (it is stored as the image's label and source): rename it")
            continue
        try:
            if path.stat().st_size > MAX_IMPORT_BYTES:
                raise ImageError("too_many_pixels", f"file is over {MAX_IMPORT_BYTES} bytes")
            rec = prepare_record(path.read_bytes(), config.max_image_pixels, source=source, label=label,
                                 source_url=f"{directory.name}/{rel.as_posix()}", licence=licence,
                                 licence_url=licence_url, attribution=attribution)
        except (ImageError, OSError) as exc:
            skip(path, str(exc))
            continue
        pending.append(rec)
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    log.info("images: %d seen, %d new, %d already stored, %d unreadable", counts["seen"], counts["inserted"],
             counts["duplicates"], counts["failed"])
    return counts
