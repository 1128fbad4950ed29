"""Offline quality of image search: P@1, P@10 and confidence separation through the served search path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from marconi.config import Config
from marconi.db.images import image_id_by_sha256, indexed_labels
from marconi.image_search.calibration import auc, rounded
from marconi.image_search.search import ImageSearcher
from marconi.imageio import ImageError, load_image
from marconi.importers.images import image_files
from marconi.progress import progress as progress_bar
from marconi.training.images import serving_fitted_ids


def eval_images(engine: sa.Engine, queries: Path, config: Config | None = None, k: int = 10,
                progress: bool = True, rerank: bool | None = None) -> dict:
    """P@1 and P@10 of label matches for a labelled folder tree of queries, through the served search path.

    A query whose exact bytes are in the index is answered with itself excluded (leave-one-out). A query whose label
    no indexed image has is *unknown*: the collection holds nothing like it, so it has no right answer and counts
    only towards ``known_vs_unknown_auc``, how well the confidence tells known queries (higher) from unknown ones;
    P@k and ``confidence_auc`` (right against wrong top-1 answers) are over the known queries.

    When the serving run has a learned metric, queries whose bytes are among the images it was fitted on are left
    out (``excluded_fitted``): scoring them would measure what the fit memorised, not what a new photo gets.
    """
    config = config or Config()
    rerank = config.image_rerank if rerank is None else rerank
    searcher = ImageSearcher(config, engine)
    files = image_files(Path(queries))
    if not files:
        raise FileNotFoundError(f"no images under {queries}: expected a folder tree <label>/<image>")
    p1, p10, conf, right, unknown_conf = [], [], [], [], []
    excluded = 0
    with engine.connect() as conn:
        indexed = set(indexed_labels(conn))
        run_id, fitted = serving_fitted_ids(conn)
        for path in progress_bar(files, unit="query", desc="evaluating", enabled=progress):
            label = path.relative_to(queries).parts[0]
            data = path.read_bytes()
            own = image_id_by_sha256(conn, hashlib.sha256(data).hexdigest())
            if own in fitted:
                excluded += 1
                continue
            try:
                img = load_image(data, max_pixels=config.max_image_pixels)
            except ImageError:
                continue
            res = searcher.search(conn, img, k, exclude_ids=(own,) if own else (), rerank=rerank)
            labs = [m["label"] for m in res["matches"]]
            if not labs:
                continue
            if label not in indexed:
                unknown_conf.append(res["confidence"])
                continue
            p1.append(labs[0] == label)
            p10.append(np.mean([lab == label for lab in labs[:10]]))
            conf.append(res["confidence"])
            right.append(labs[0] == label)
    conf_a, right_a = np.array(conf, dtype=float), np.array(right, dtype=bool)
    out = {"queries": len(p1), "P@1": _mean(p1), "P@10": _mean(p10), "confidence_auc": rounded(auc(conf_a, right_a)),
           "mean_confidence_right": _mean(conf_a[right_a]), "mean_confidence_wrong": _mean(conf_a[~right_a])}
    if fitted:
        out["excluded_fitted"] = excluded
        out["excluded_why"] = (f"{excluded} queries left out: they are among the {len(fitted)} photos that the serving "
                               f"run's learned metric (model run {run_id}) was fitted on, so scoring them would "
                               "measure what the fit memorised")
    if unknown_conf:
        both = np.concatenate([conf_a, unknown_conf])
        known = np.arange(len(both)) < len(conf_a)
        out.update({"unknown_queries": len(unknown_conf), "known_vs_unknown_auc": rounded(auc(both, known)),
                    "mean_confidence_unknown": _mean(unknown_conf)})
    return out


def _mean(values) -> float | None:
    """The mean rounded to 4 places; None for no values (never NaN in JSON)."""
    return round(float(np.mean(values)), 4) if len(values) else None
