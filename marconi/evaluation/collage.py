"""Region search measured: a query photo pasted into a 2x2 collage, searched whole and with the box of its cell.

For each query photo of a labelled folder tree, the three other cells of its collage hold photos of three other
labels from the same tree (drawn with a seeded generator, so a run is repeatable). Each photo is shrunk or enlarged
to fit its cell, keeping its proportions, and centred on grey. Three searches go through the served path
(:class:`~marconi.image_search.search.ImageSearcher`, as ``marconi.evaluation.images`` does), each with the query
left out of its own answer when its bytes are indexed (and left out altogether when the serving run's learned
metric was fitted on it):

- ``plain``: the query photo alone;
- ``collage``: the whole collage, as if the user had not drawn a box;
- ``collage_box``: the collage cropped by ``marconi.image_search.region.crop_frames`` (the function the API uses) to
  the box of the query's cell, the photo as pasted without the cell's grey margins.

The issue's goal: ``collage_box`` P@1 within 0.02 of ``plain``; ``collage`` shows what is lost without a box.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from PIL import Image, ImageOps

from marconi.config import Config
from marconi.db.images import image_id_by_sha256, indexed_labels
from marconi.image_search.region import crop_frames
from marconi.image_search.search import ImageSearcher
from marconi.imageio import ImageError, load_image
from marconi.importers.images import image_files
from marconi.progress import progress as progress_bar
from marconi.training.images import serving_fitted_ids

CELL = (320, 240)  # width, height of one cell: Caltech-101 photos are about 300 px wide, most of them landscape
BACKGROUND = (128, 128, 128)
KINDS = ("plain", "collage", "collage_box")


def make_collage(query: Image.Image, others: list[Image.Image], cell: int,
                 size: tuple[int, int] = CELL) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Return a 2x2 collage with ``query`` in cell ``cell`` (0-3, row by row) and ``others`` in the rest, and the
    box ``(x, y, w, h)`` of the query as pasted."""
    cw, ch = size
    canvas = Image.new("RGB", (2 * cw, 2 * ch), BACKGROUND)
    photos = list(others)
    photos.insert(cell, query)
    box = None
    for i, photo in enumerate(photos):
        fitted = ImageOps.contain(photo, size, Image.Resampling.LANCZOS)
        x = (i % 2) * cw + (cw - fitted.width) // 2
        y = (i // 2) * ch + (ch - fitted.height) // 2
        canvas.paste(fitted, (x, y))
        if i == cell:
            box = (x, y, fitted.width, fitted.height)
    return canvas, box


def eval_collage(engine: sa.Engine, queries: Path, config: Config | None = None, k: int = 10, progress: bool = True,
                 rerank: bool | None = None, sample: int | None = None, seed: int = 0) -> dict:
    """P@1 and P@10 of the plain query, the whole collage and the collage's box, over the labelled tree ``queries``.

    ``sample`` draws that many query photos (seeded) instead of all of them. Queries whose label no indexed image has,
    and photos that cannot be decoded, are skipped (counted in ``skipped``).
    """
    config = config or Config()
    rerank = config.image_rerank if rerank is None else rerank
    queries = Path(queries)
    files = image_files(queries)
    by_label: dict[str, list[Path]] = {}
    for path in files:
        by_label.setdefault(path.relative_to(queries).parts[0], []).append(path)
    if len(by_label) < 4:
        raise ValueError(f"a 2x2 collage needs photos of at least 4 labels under {queries}; found {len(by_label)}")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(files, sample)) if sample and sample < len(files) else files
    searcher = ImageSearcher(config, engine)
    hits: dict[str, dict[str, list[float]]] = {kind: {"P@1": [], "P@10": []} for kind in KINDS}
    skipped = excluded = 0
    with engine.connect() as conn:
        indexed = set(indexed_labels(conn))
        _, fitted = serving_fitted_ids(conn)
        for path in progress_bar(chosen, unit="query", desc="collages", enabled=progress):
            label = path.relative_to(queries).parts[0]
            # Drawn before any skip, so that each query's collage does not depend on which others were skipped.
            cell = rng.randrange(4)
            fillers = [rng.choice(by_label[other]) for other in rng.sample(sorted(set(by_label) - {label}), 3)]
            if label not in indexed:
                skipped += 1
                continue
            data = path.read_bytes()
            try:
                img = load_image(data, max_pixels=config.max_image_pixels)
                others = [load_image(f.read_bytes(), max_pixels=config.max_image_pixels) for f in fillers]
            except ImageError:
                skipped += 1
                continue
            collage, box = make_collage(img, others, cell)
            cropped, _ = crop_frames([collage], box)
            own = image_id_by_sha256(conn, hashlib.sha256(data).hexdigest())
            if own in fitted:  # the serving run's learned metric was fitted on it: not an honest query
                excluded += 1
                continue
            exclude = (own,) if own else ()
            for kind, query in zip(KINDS, (img, collage, cropped[0]), strict=True):
                labs = [m["label"] for m in searcher.search(conn, query, k, exclude_ids=exclude,
                                                            rerank=rerank)["matches"]]
                hits[kind]["P@1"].append(bool(labs) and labs[0] == label)
                hits[kind]["P@10"].append(np.mean([lab == label for lab in labs[:10]]) if labs else 0.0)
    out: dict = {"queries": len(hits["plain"]["P@1"]), "skipped": skipped, "excluded_fitted": excluded, "seed": seed,
                 "collage_size": [2 * CELL[0], 2 * CELL[1]]}
    for kind in KINDS:
        out[kind] = {name: _mean(values) for name, values in hits[kind].items()}
    if out["queries"]:
        for kind in ("collage", "collage_box"):
            out[f"{kind}_minus_plain"] = {name: round(out[kind][name] - out["plain"][name], 4)
                                          for name in ("P@1", "P@10")}
    return out


def _mean(values) -> float | None:
    """The mean rounded to 4 places; None for no values (never NaN in JSON)."""
    return round(float(np.mean(values)), 4) if len(values) else None
