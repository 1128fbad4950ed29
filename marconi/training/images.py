"""`marconi train images`: learn a distance from the collection's labels and serve it as a new image model run.

The serving run's vectors (the encoder's, as stored) and the images' labels are read; a
:class:`marconi.image_search.metric.LearnedMetric` is fitted on the labelled images (except any labels held out);
the vectors are re-indexed in its space (PCA, calibration) and swapped in as a new run of the same encoder, which
stores the metric with it. Queries are then encoded as before and moved into the same space. The stored full
vectors stay the encoder's, so training again, or ``marconi encode images``, starts from them. Each image's classes
and tags do not depend on the metric and are carried over.

The fit can be limited to the first ``fit_per_label`` images of each label (in id order, which is import order:
``marconi import images`` reads files sorted by name), so that the other photos stay honest queries; the ids of the
fitted images are stored with the run (:data:`FIT_IMAGES_ARTIFACT`) and ``marconi eval images`` leaves them out.
``shrinkage`` and ``blend`` left as None are chosen on the fitted photos alone
(:func:`marconi.training.image_metric_choice.choose_setting`).

Before anything is served, the report says honestly what the metric does, on data its fit never saw:

- ``unseen_photos``: a second metric is fitted on the first half (in id order) of each label's fitted images, and
  the other half are queries; P@1/P@10 of cosine in the encoder's space against the learned space;
- ``held_out_labels`` (with ``holdout_labels``): the images of labels left out of the fit are the queries.

Each query ranks every other image of the collection.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Collection, Sequence

import numpy as np
import sqlalchemy as sa

from marconi import runs
from marconi.config import Config
from marconi.db import image_words as words_db
from marconi.db import images as images_db
from marconi.db.cube import to_cube, to_pg_array
from marconi.errors import Conflict
from marconi.evaluation.image_metrics import nearest
from marconi.image_search.build import COLUMNS
from marconi.image_search.calibration import calibrate, labelled_enough
from marconi.image_search.metric import DEFAULT_BLEND, DEFAULT_SHRINKAGE, METRIC_ARTIFACT, LearnedMetric
from marconi.image_search.pca import PCA
from marconi.training.image_metric_choice import BLENDS, SHRINKAGES, choose_setting, first_of_each_label

FIT_IMAGES_ARTIFACT = "fit_images.npy"  # the ids of the images the metric was fitted on, stored with its run

log = logging.getLogger(__name__)


class NothingToLearn(Conflict):
    """No image run serves, or its images have too few labels to learn from."""

    code = "nothing_to_learn"


def fitted_image_ids(conn: sa.Connection, run_id: int) -> frozenset[int]:
    """Return the ids of the images a run's learned metric was fitted on (empty for a run without one)."""
    data = runs.artifact(conn, run_id, FIT_IMAGES_ARTIFACT)
    return frozenset() if data is None else frozenset(int(i) for i in np.load(io.BytesIO(data)))


def serving_fitted_ids(conn: sa.Connection) -> tuple[int | None, frozenset[int]]:
    """Return (the serving image run's id, the ids of the images its learned metric was fitted on)."""
    run = runs.serving_run(conn, "images")
    return (None, frozenset()) if run is None else (run["id"], fitted_image_ids(conn, run["id"]))


def _ids_bytes(ids: np.ndarray) -> bytes:
    """The image ids as .npy bytes (the artifact :func:`fitted_image_ids` reads)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(ids, dtype=np.int64))
    return buf.getvalue()


def _precision(space: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int = 10) -> dict:
    """P@1 and P@k of ``queries`` (row indices) ranking every other row by cosine in ``space``."""
    if not len(queries):
        return {}
    hits = labels[nearest(space, queries, "cosine", k)] == labels[queries][:, None]
    return {"queries": int(len(queries)), "P@1": round(float(hits[:, 0].mean()), 4),
            f"P@{k}": round(float(hits.mean()), 4)}


def _report(full: np.ndarray, labels: np.ndarray, fit_mask: np.ndarray, holdout: np.ndarray, shrinkage: float,
            blend: float) -> dict:
    """Encoder space against learned space on photos and labels the respective fit never saw."""
    plain = full / np.maximum(np.linalg.norm(full, axis=1, keepdims=True), 1e-12)
    first_half = first_of_each_label(labels, fit_mask)
    second_half = np.flatnonzero(fit_mask & ~first_half)
    report: dict = {}
    try:
        half = LearnedMetric.fit(full[first_half], labels[first_half], shrinkage, blend).transform(full)
        report["unseen_photos"] = {"encoder": _precision(plain, labels, second_half),
                                   "learned": _precision(half, labels, second_half)}
    except ValueError as exc:  # too few photos per label for a half split
        report["unseen_photos"] = {"skipped": str(exc)}
    if holdout.any():
        learned = LearnedMetric.fit(full[fit_mask], labels[fit_mask], shrinkage, blend).transform(full)
        queries = np.flatnonzero(holdout)
        report["held_out_labels"] = {"labels": int(len(set(labels[holdout]))),
                                     "encoder": _precision(plain, labels, queries),
                                     "learned": _precision(learned, labels, queries)}
    return report


def _unfitted_precision(reduced: np.ndarray, labels: np.ndarray, fit_mask: np.ndarray, k: int = 10) -> dict:
    """P@1 and P@k, as the index ranks, of the labelled images the metric was not fitted on (each among all others).

    They replace the calibration's leave-one-out figures, which would count the fitted images the metric memorised.
    """
    queries = np.flatnonzero((labels != "") & ~fit_mask)
    if not len(queries):
        return {"asked": "every labelled image, all of them fitted on (optimistic)"}
    hits = labels[nearest(reduced, queries, "euclidean", k)] == labels[queries][:, None]
    return {"asked": "the labelled images the metric was not fitted on", "queries": int(len(queries)),
            "P@1": round(float(hits[:, 0].mean()), 4), f"P@{k}": round(float(hits.mean()), 4)}


def train_images(engine: sa.Engine, config: Config | None = None, holdout_labels: Collection[str] = (),
                 shrinkage: float | None = DEFAULT_SHRINKAGE, blend: float | None = DEFAULT_BLEND,
                 pca_dims: int = 100, fit_per_label: int | None = None) -> dict:
    """Fit a learned metric on the labelled images, report it, and serve it as a new image run; return a summary.

    ``fit_per_label``: fit on the first N images of each label only (None: all of them). ``shrinkage`` or ``blend``
    None: chosen on the fitted images (raises NothingToLearn when the encoder's own space validates best).
    """
    config = config or Config()
    t0 = time.time()
    with engine.connect() as conn:
        base_run, ids, full, label_list = images_db.serving_vectors(conn)
        if base_run is None:
            raise NothingToLearn("no image model is serving: run `marconi encode images` first")
        base = runs.run_by_id(conn, base_run)
        class_rows = words_db.serving_rows(conn, "image_classes")
        tag_rows = words_db.serving_rows(conn, "image_tags")
    labels = np.array([lab if lab is not None else "" for lab in label_list], dtype=object)
    unknown = sorted(set(holdout_labels) - set(labels))
    if unknown:
        raise NothingToLearn(f"held-out label(s) not in the collection: {', '.join(unknown[:5])}")
    holdout = np.isin(labels, list(holdout_labels))
    fit_mask = (labels != "") & ~holdout
    if fit_per_label is not None:
        fit_mask = first_of_each_label(labels, fit_mask, fit_per_label)
    choice = None
    if shrinkage is None or blend is None:
        try:
            choice = choose_setting(full[fit_mask], labels[fit_mask], pca_dims=pca_dims,
                                    blends=BLENDS if blend is None else (blend,),
                                    shrinkages=SHRINKAGES if shrinkage is None else (shrinkage,))
        except ValueError as exc:
            raise NothingToLearn(f"{exc}: import labelled images (one folder per label) first") from None
        if choice["blend"] is None:
            raise NothingToLearn("no learned setting beat the encoder's own space on the fitted photos "
                                 f"(validation: {choice['validation'][:3]}); give --blend and --shrinkage to "
                                 "train one anyway")
        shrinkage, blend = choice["shrinkage"], choice["blend"]
        log.info("chose shrinkage %s, blend %s on the fitted photos: %s", shrinkage, blend, choice["validation"][:3])
    try:
        metric = LearnedMetric.fit(full[fit_mask], labels[fit_mask], shrinkage, blend)
    except ValueError as exc:
        raise NothingToLearn(f"{exc}: import labelled images (one folder per label) first") from None
    report = _report(full, labels, fit_mask, holdout, shrinkage, blend)
    if choice is not None:
        report["chosen_on_fitted_photos"] = {"queries": choice["queries"], "best": choice["validation"][:3]}
    log.info("learned metric on %d images of %d labels: %s", fit_mask.sum(), len(set(labels[fit_mask])), report)
    space = metric.transform(full)
    pca = PCA.fit(space, pca_dims)
    reduced = pca.transform(space)
    # the metric memorised its fitted images: calibrated on them, the confidence would be too sure of itself
    unfitted = np.flatnonzero((labels != "") & ~fit_mask)
    enough = labelled_enough(labels[unfitted])
    cal, loo = calibrate(space, list(label_list), rank=reduced, query_rows=unfitted if enough else None)
    loo = {**loo, "calibration_queries": loo.get("queries"),
           "calibration_asked": "the images the metric was not fitted on" if enough
           else "every image, the fitted ones included (too few others)",
           **_unfitted_precision(reduced, labels, fit_mask)}
    params = {"encoder": base["params"].get("encoder"), "base_run": base_run, "pca_dims": pca.dims,
              "metric": {"method": "regularised LDA blended with the encoder space", "shrinkage": shrinkage,
                         "blend": blend, "learned_dims": int(metric.projection.shape[1]),
                         "fit_images": int(fit_mask.sum()), "fit_labels": len(set(labels[fit_mask])),
                         "fit_per_label": fit_per_label, "chosen_by_validation": choice is not None,
                         "held_out_labels": sorted(holdout_labels)}}
    with runs.build(engine, "images", base["model"], params, pca.dims, config) as run:
        run.save_artifact("pca.npz", pca.to_bytes())
        run.save_artifact(METRIC_ARTIFACT, metric.to_bytes())
        run.save_artifact(FIT_IMAGES_ARTIFACT, _ids_bytes(np.asarray(ids)[fit_mask]))
        written = run.stage(COLUMNS, ((iid, run.id, to_cube(reduced[i]), to_pg_array(full[i]))
                                      for i, iid in enumerate(ids)))
        run.stage(words_db.IMAGE_CLASS_COLUMNS, _with_run(class_rows, run.id), table="image_classes")
        run.stage(words_db.IMAGE_TAG_COLUMNS, _with_run(tag_rows, run.id), table="image_tags")
        metrics = {"report": report, "calibration": cal, "leave_one_out": loo, "pca_dims": pca.dims,
                   "seconds": round(time.time() - t0, 2)}
        if "words" in (base["metrics"] or {}):  # the classes and tags carried over (the demo re-encodes without)
            metrics["words"] = base["metrics"]["words"]
        run.publish(written, metrics, dims=pca.dims)
    log.info("image model run %d serving with a learned metric (from run %d): leave-one-out %s", run.id, base_run,
             loo)
    return {"run_id": run.id, "base_run": base_run, "vectors": written, **metrics}


def _with_run(rows: Sequence[tuple], run_id: int):
    """Rows read without their run id, given the new run's (second column)."""
    return ((r[0], run_id, *r[1:]) for r in rows)
