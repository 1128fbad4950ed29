"""Build an image index as one model run: read images from Postgres → encode → PCA → calibrate → write.

Read → map → write: the stored bytes are streamed from Postgres, decoded in worker processes and encoded by one
encoder (:mod:`marconi.encoders`, the only code touching the GPU), reduced by a PCA fitted on the indexed set,
calibrated, and written through :func:`marconi.runs.build`: the PCA is stored with the run, the vectors are staged
and indexed, and the run is swapped in whole. A crash at any point marks the run failed and leaves the previous
index serving. An encoder with an ImageNet head also gives each image's top classes and readable tags (from the
same forward pass), written with the run for text search and ``image_tags``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from PIL import Image

from marconi import runs
from marconi.config import Config
from marconi.db import image_words as words_db
from marconi.db import images as images_db
from marconi.db.cube import CUBE_MAX_DIM, to_cube, to_pg_array
from marconi.errors import Conflict
from marconi.image_search import smoothing, tagging
from marconi.image_search.calibration import Encode, Originals, calibrate
from marconi.image_search.pca import PCA

log = logging.getLogger(__name__)

COLUMNS = ("image_id", "run_id", "vec", "full_vec")


class NoImages(Conflict):
    """There is nothing to encode: no image has been imported."""

    code = "no_images"


class _Sized:
    """An iterable with a length, so the progress bar shows a total."""

    def __init__(self, it: Iterable, n: int):
        self.it, self.n = it, n

    def __iter__(self) -> Iterator:
        return iter(self.it)

    def __len__(self) -> int:
        return self.n


Encoded = tuple[list[int], np.ndarray, np.ndarray | None, list[tuple[int, str]]]


def encode_items(enc, items: Iterable[tuple[int, bytes]], batch_size: int, workers: int, progress: bool,
                 max_pixels: int) -> Encoded:
    """Return (image ids, full features, class probabilities or None, failures) for (image id, bytes) items.

    The mapper of every encode: this process's (:func:`_encode_all`) and each Ray worker's
    (:mod:`marconi.image_search.ray_encode`).
    """
    from marconi.encoders import batch

    ids, feats, probs, failures = [], [], [], []
    for keys, f, failed, *p in batch.encode_stream(enc, items, batch_size=batch_size, workers=workers,
                                                   progress=progress, max_pixels=max_pixels,
                                                   with_classes=enc.classes > 0):
        ids += keys
        feats.append(f)
        probs += p
        failures += failed
    return ids, np.vstack(feats).astype(np.float32), np.vstack(probs) if probs else None, failures


def _encode_all(engine: sa.Engine, enc, n: int, batch_size: int, workers: int, progress: bool,
                max_pixels: int) -> Encoded:
    """Return :func:`encode_items` of every stored image, encoded in this process."""
    with engine.connect() as conn:
        return encode_items(enc, _Sized(images_db.stream_image_bytes(conn), n), batch_size, workers, progress,
                            max_pixels)


def _stage_words(run, conn_engine: sa.Engine, ids: list[int], probs: np.ndarray | None, full: np.ndarray) -> dict:
    """Stage each image's top classes and tags (empty without a classifier head); return counts for the metrics.

    Both come from class evidence smoothed over each image's nearest images (:mod:`.smoothing`): the stored classes
    are the top ones by smoothed √p (with the image's own p beside), the tags those of smoothed probabilities.
    """
    if probs is None:
        run.stage(words_db.IMAGE_CLASS_COLUMNS, [], table="image_classes")
        run.stage(words_db.IMAGE_TAG_COLUMNS, [], table="image_tags")
        return {"classes": 0, "tags": 0}
    from marconi.text.vocabulary import imagenet_classes

    vocabulary = imagenet_classes()
    with conn_engine.begin() as conn:
        words_db.upsert_classes(conn, [{"class_index": c.index, "wnid": c.wnid, "name": c.name, "names": list(c.names),
                                        "definition": c.definition,
                                        "broader": list(c.broader_words(tagging.BROADER_DEPTH, first_only=True))}
                                       for c in vocabulary])
    neighbours = smoothing.nearest(full)
    classes, scores = tagging.top_classes(smoothing.smoothed(probs, neighbours, np.sqrt))
    own = np.take_along_axis(probs, classes, axis=1)
    n_classes = run.stage(words_db.IMAGE_CLASS_COLUMNS, tagging.class_rows(ids, run.id, classes, own, scores),
                          table="image_classes")
    tag_classes, tag_p = tagging.top_classes(smoothing.smoothed(probs, neighbours))
    tag_rows = tagging.tag_rows(ids, run.id, tag_classes, tag_p, vocabulary, tagging.everyday_words())
    n_tags = run.stage(words_db.IMAGE_TAG_COLUMNS, tag_rows, table="image_tags")
    return {"classes": len(vocabulary), "image_classes": n_classes, "tags": n_tags}


# Calibration without labels encodes altered copies of stored photos (read here, from the database) exactly as
# a query is encoded.
def _encode_like_queries(encoder, batch_size: int = 32) -> Encode:
    """Return an :data:`Encode` running a loaded :mod:`marconi.encoders` encoder on images as on a query."""

    def encode(imgs: list[Image.Image]) -> np.ndarray:
        import torch

        parts = [encoder.encode_batch(torch.stack([encoder.preprocess(im) for im in imgs[i:i + batch_size]]))
                 for i in range(0, len(imgs), batch_size)]
        return np.vstack(parts) if parts else np.zeros((0, encoder.dims), dtype=np.float32)

    return encode


def _stored_originals(engine: sa.Engine, ids: Sequence[int], max_pixels: int, max_side: int = 1024) -> Originals:
    """Return an :data:`Originals` decoding rows of ``ids`` (stored image ids) from the database, at most
    ``max_side`` px a side (None for an image that cannot be decoded)."""

    def load(rows: Sequence[int]) -> list[Image.Image | None]:
        from marconi.imageio import ImageError, load_image

        out: list[Image.Image | None] = []
        with engine.connect() as conn:
            for r in rows:
                found = images_db.image_file(conn, int(ids[r]))
                try:
                    img = None if found is None else load_image(found[0], max_pixels=max_pixels,
                                                                draft_size=(max_side, max_side))
                except ImageError:
                    img = None
                if img is not None:
                    img.thumbnail((max_side, max_side))
                out.append(img)
        return out

    return load


def encode_images(engine: sa.Engine, config: Config | None = None, encoder: str | None = None,
                  batch_size: int = 32, workers: int = 0, pca_dims: int = 100, weights: Path | None = None,
                  progress: bool = True, compile: bool = False, encode_all: Callable | None = None) -> dict:
    """Encode every stored image into a new model run and swap it in; return a summary with calibration figures.

    ``encoder`` defaults to ``config.encoder``; ``workers`` decoding processes (0: decode inline); ``pca_dims``
    of the indexed cube (≤ 100); ``weights`` overrides the encoder's weights file. ``compile`` runs the encoder
    through ``torch.compile`` (needs a C++ compiler on the CPU; about 10 s of warm-up, then 1.6-1.8x faster on this
    2-core CPU, see docs/benchmarks.md). ``encode_all`` encodes elsewhere instead of in this process: a callable
    taking :func:`_encode_all`'s arguments and returning what it returns (e.g. a Ray cluster's
    :class:`marconi.image_search.ray_encode.RayEncoding`); its ``str`` is recorded with the run's parameters.
    """
    from marconi.encoders import load_encoder

    config = config or Config()
    name = encoder or config.encoder
    t0 = time.time()
    enc = load_encoder(name, device=config.device, cache_dir=config.model_dir, weights_path=weights, compile=compile)
    with engine.connect() as conn:
        n = images_db.count_images(conn)
        labels_by_id = images_db.labels_by_id(conn)
    if n == 0:
        raise NoImages("no images to encode: import some first (`marconi import images DIR`)")
    params = {"encoder": enc.describe(), "pca_dims": pca_dims, "batch_size": batch_size, "workers": workers}
    if encode_all is not None:
        params["encoded_by"] = str(encode_all)
    with runs.build(engine, "images", name, params, min(pca_dims, CUBE_MAX_DIM, n, enc.dims), config) as run:
        ids, full, probs, failures = (encode_all or _encode_all)(engine, enc, n, batch_size, workers, progress,
                                                                 config.max_image_pixels)
        encode_s = time.time() - t0
        pca = PCA.fit(full, pca_dims)
        reduced = pca.transform(full)
        # ranked like the served index (PCA space), described by full-vector similarities like the search
        # without usable labels: calibrated on altered copies of stored images, encoded like a query
        cal, report = calibrate(full, [labels_by_id[i] for i in ids], rank=reduced, project=pca.transform,
                                encode=_encode_like_queries(enc),
                                originals=_stored_originals(engine, ids, config.max_image_pixels))
        metrics = {"encode_seconds": round(encode_s, 2), "images_per_second": round(len(ids) / encode_s, 1),
                   "failed": len(failures), "pca_dims": pca.dims, "calibration": cal,
                   "leave_one_out": report, "device": str(enc.device)}
        run.save_artifact("pca.npz", pca.to_bytes())
        rows = ((iid, run.id, to_cube(reduced[i]), to_pg_array(full[i])) for i, iid in enumerate(ids))
        written = run.stage(COLUMNS, rows)
        metrics["words"] = _stage_words(run, engine, ids, probs, full)
        run.publish(written, metrics, dims=pca.dims)
    for key, reason in failures:
        log.warning("image %s not encoded: %s", key, reason)
    log.info("image model run %d serving: %d vectors (%s), %.1f img/s, leave-one-out %s", run.id, written, name,
             metrics["images_per_second"], report)
    return {"run_id": run.id, "vectors": written, "encoder": name, **metrics}
