"""Offline quality of image search: P@1, P@10 and confidence separation through the served search path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from tqdm import tqdm

from marconi.config import Config
from marconi.db.images import image_id_by_sha256
from marconi.image_search.calibration import auc, rounded
from marconi.image_search.search import ImageSearcher
from marconi.imageio import ImageError, load_image
from marconi.importers.images import image_files


def eval_images(engine: sa.Engine, queries: Path, config: Config | None = None, k: int = 10,
                progress: bool = True, rerank: bool | None = None) -> dict:
    """P@1 and P@10 of label matches for a labelled folder tree of queries, through the served search path.

    A query whose exact bytes are in the index is answered with itself excluded (leave-one-out).
    """
    config = config or Config()
    rerank = config.image_rerank if rerank is None else rerank
    searcher = ImageSearcher(config, engine)
    files = image_files(Path(queries))
    if not files:
        raise FileNotFoundError(f"no images under {queries}: expected a folder tree <label>/<image>")
    p1, p10, conf, right = [], [], [], []
    with engine.connect() as conn:
        for path in tqdm(files, unit="query", desc="evaluating", disable=not progress):
            label = path.relative_to(queries).parts[0]
            data = path.read_bytes()
            try:
                img = load_image(data, max_pixels=config.max_image_pixels)
            except ImageError:
                continue
            own = image_id_by_sha256(conn, hashlib.sha256(data).hexdigest())
            res = searcher.search(conn, img, k, exclude_ids=(own,) if own else (), rerank=rerank)
            labs = [m["label"] for m in res["matches"]]
            if not labs:
                continue
            p1.append(labs[0] == label)
            p10.append(np.mean([lab == label for lab in labs[:10]]))
            conf.append(res["confidence"])
            right.append(labs[0] == label)
    conf_a, right_a = np.array(conf, dtype=float), np.array(right, dtype=bool)
    return {"queries": len(p1), "P@1": round(float(np.mean(p1)), 4), "P@10": round(float(np.mean(p10)), 4),
            "confidence_auc": rounded(auc(conf_a, right_a)),
            "mean_confidence_right": round(float(conf_a[right_a].mean()), 4) if right_a.any() else None,
            "mean_confidence_wrong": round(float(conf_a[~right_a].mean()), 4) if (~right_a).any() else None}
