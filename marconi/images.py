"""Reverse image search: import images, encode them into a model run, answer queries, calibrate confidence.

Read → map → write: images are read from Postgres, encoded by one encoder (``marconi.embed.images``, the only
code touching the GPU), reduced by a PCA fitted on the indexed set, and written to ``image_vectors`` through a
staging table swapped in atomically. A query is encoded by the encoder recorded with the serving run, projected
with that run's PCA, answered by the cube GiST index, and the top candidates are re-ranked with the full vectors.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from tqdm import tqdm

from marconi.config import Config
from marconi.db import neighbours
from marconi.db import vectors as vdb
from marconi.db.cube import CUBE_MAX_DIM, to_cube, to_pg_array
from marconi.db.ingest import ImageRecord, upsert_image

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
    from marconi.embed.imageio import image_info, load_image, make_thumbnail

    info = image_info(data)
    img = load_image(data, max_pixels=max_pixels)
    return ImageRecord(sha256=info["sha256"], data=data, thumbnail=make_thumbnail(img), width=info["width"],
                       height=info["height"], format=info["format"], **meta)


def import_images(engine: sa.Engine, directory: Path, config: Config | None = None, source: str = "import",
                  licence: str | None = None, licence_url: str | None = None, attribution: str | None = None,
                  batch_size: int = 50, progress: bool = True) -> dict:
    """Import a folder tree ``<label>/<file>`` of images; return counts {seen, inserted, duplicates, failed}.

    Idempotent (images are keyed by sha256 and stored once); unreadable files are skipped and reported, never
    fatal. Each image is written with its bytes in the same transaction.
    """
    from marconi.embed.imageio import ImageError

    config = config or Config()
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder of <label>/<image> files")
    files = image_files(directory)
    counts = {"seen": 0, "inserted": 0, "duplicates": 0, "failed": 0, "failures": []}
    if licence is None and directory.name == "caltech101":
        licence, licence_url = "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"
        attribution = attribution or "Caltech 101 (Fei-Fei Li, Rob Fergus, Pietro Perona, CVPR-W 2004)"
    bar = tqdm(files, unit="img", desc="importing images", disable=not progress)
    pending: list[ImageRecord] = []

    def flush():
        with engine.begin() as conn:
            for rec in pending:
                _, inserted = upsert_image(conn, rec)
                counts["inserted" if inserted else "duplicates"] += 1
        pending.clear()

    for path in bar:
        counts["seen"] += 1
        rel = path.relative_to(directory)
        label = rel.parts[0] if len(rel.parts) > 1 else None
        try:
            if path.stat().st_size > MAX_IMPORT_BYTES:
                raise ImageError("too_many_pixels", f"file is over {MAX_IMPORT_BYTES} bytes")
            rec = prepare_record(path.read_bytes(), config.max_image_pixels, source=source, label=label,
                                 source_url=f"{directory.name}/{rel.as_posix()}", licence=licence,
                                 licence_url=licence_url, attribution=attribution)
        except (ImageError, OSError) as exc:
            counts["failed"] += 1
            counts["failures"].append((str(path), str(exc)))
            log.warning("skipped %s: %s", path, exc)
            continue
        pending.append(rec)
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    log.info("images: %d seen, %d new, %d already stored, %d unreadable", counts["seen"], counts["inserted"],
             counts["duplicates"], counts["failed"])
    return counts


# ----------------------------------------------------------------------------------------------------- PCA
@dataclass
class PCA:
    """A fitted PCA: ``mean`` (D,), ``components`` (k, D). Projections are L2-normalised."""

    mean: np.ndarray
    components: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, dims: int) -> PCA:
        """Fit on rows of ``x`` keeping ``dims`` components (at most min(N, D), and ≤ cube's 100)."""
        dims = min(dims, CUBE_MAX_DIM, x.shape[0], x.shape[1])
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        return cls(mean.astype(np.float32), vt[:dims].astype(np.float32))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Project rows and L2-normalise them."""
        y = (np.atleast_2d(x) - self.mean) @ self.components.T
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)

    def to_bytes(self) -> bytes:
        """Serialise as .npz bytes."""
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, components=self.components)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PCA:
        """Load from .npz bytes."""
        z = np.load(io.BytesIO(data))
        return cls(z["mean"], z["components"])


# ---------------------------------------------------------------------------------------------- confidence
def confidence_features(sims: np.ndarray, labels: list) -> np.ndarray:
    """Features of one answer list: top-1 similarity, its margin over the 10th, and top-10 label agreement."""
    if len(sims) == 0:
        return np.zeros(3)
    top = sims[0]
    tenth = sims[min(9, len(sims) - 1)]
    agree = np.mean([lab == labels[0] for lab in labels[:10]]) if labels[0] is not None else 0.0
    return np.array([top, top - tenth, agree], dtype=np.float64)


@dataclass
class Calibration:
    """Logistic model turning confidence features into P(top-1 label is right)."""

    weights: np.ndarray
    bias: float

    def __call__(self, feats: np.ndarray) -> float:
        """Return the calibrated confidence in [0, 1]."""
        return float(1.0 / (1.0 + np.exp(-(feats @ self.weights + self.bias))))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, l2: float = 0.1, iters: int = 100) -> Calibration:
        """Fit by Newton's method on (features, right/wrong) pairs."""
        xb = np.hstack([x, np.ones((len(x), 1))])
        w = np.zeros(xb.shape[1])
        for _ in range(iters):
            p = 1 / (1 + np.exp(-xb @ w))
            grad = xb.T @ (p - y) + l2 * w
            hess = (xb * (p * (1 - p))[:, None]).T @ xb + l2 * np.eye(len(w))
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls(w[:-1], float(w[-1]))

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {"weights": self.weights.tolist(), "bias": self.bias}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """Inverse of to_dict."""
        return cls(np.asarray(d["weights"], dtype=np.float64), float(d["bias"]))


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve: P(score of a right answer > score of a wrong one); None if one side is empty."""
    pos, neg = scores[positive.astype(bool)], scores[~positive.astype(bool)]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def calibrate(full: np.ndarray, labels: list, k: int = 10, sample: int = 2000, seed: int = 0,
              unknown_share: float = 0.25, rank: np.ndarray | None = None) -> tuple[dict, dict]:
    """Calibrate the confidence on held-out queries drawn from the indexed set; return (calibration, report).

    Each sampled image queries the index with only itself left out (right when the top-1 label matches); a share
    ``unknown_share`` of them also queries it with its whole class left out, which stands for a photo of something
    the collection does not hold (always wrong). The share is the prior the confidence assumes: about one query in
    five shows something the collection lacks. The report gives leave-one-out P@1 and P@10, and the AUC with
    which the confidence separates right from wrong top-1 answers over both kinds of query.

    Answers are ranked by ``rank`` (the served vectors, e.g. the PCA projections; default ``full``) and described
    by their similarities in ``full``, as the search does.
    """
    rng = np.random.default_rng(seed)
    n = len(full)
    idx = rng.choice(n, size=min(sample, n), replace=False)
    lab = np.array([str(x) for x in labels])
    sims = full[idx] @ full.T
    order = sims if rank is None else rank[idx] @ rank.T
    feats, right, p10, kind = [], [], [], []
    n_unknown = int(round(len(idx) * unknown_share))
    for row, i in enumerate(idx):
        for leave_class in ((False, True) if row < n_unknown else (False,)):
            s = order[row].copy()
            s[i] = -np.inf
            if leave_class:
                if labels[i] is None:
                    continue
                s[lab == lab[i]] = -np.inf
            top = np.argpartition(-s, k)[:k]
            top = top[np.argsort(-s[top])]
            labs = [labels[j] for j in top]
            feats.append(confidence_features(sims[row][top], labs))
            right.append(labels[i] is not None and labs[0] == labels[i])
            kind.append(leave_class)
            if not leave_class:
                p10.append(np.mean([lab_ == labels[i] for lab_ in labs]))
    x, y, kind = np.array(feats), np.array(right, dtype=float), np.array(kind)
    if 0 < y.sum() < len(y):
        cal = Calibration.fit(x, y)
    else:  # unlabelled sets: fall back to the top-1 similarity
        cal = Calibration(np.array([10.0, 0.0, 0.0]), -7.0)
    conf = np.array([cal(f) for f in x])
    loo = ~kind
    report = {"queries": int(loo.sum()), "P@1": round(float(y[loo].mean()), 4), "P@10": round(float(np.mean(p10)), 4),
              "auc_confidence": _r(auc(conf, y)),
              "auc_confidence_leave_one_out": _r(auc(conf[loo], y[loo])),
              "auc_top1_similarity": _r(auc(x[:, 0], y)),
              "mean_confidence_right": round(float(conf[y == 1].mean()), 4),
              "mean_confidence_wrong": round(float(conf[y == 0].mean()), 4),
              "mean_confidence_unknown_class": round(float(conf[kind].mean()), 4) if kind.any() else None}
    return cal.to_dict(), report


# ---------------------------------------------------------------------------------------------------- encode
def _stream_images(engine: sa.Engine):
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, max_row_buffer=256).execute(sa.text(
            "SELECT i.id, b.data FROM images i JOIN image_blobs b ON b.image_id = i.id ORDER BY i.id"))
        for image_id, data in rows:
            yield image_id, bytes(data)


class _Sized:
    """An iterable with a length, so the progress bar shows a total."""

    def __init__(self, it, n):
        self.it, self.n = it, n

    def __iter__(self):
        return iter(self.it)

    def __len__(self):
        return self.n


def encode_images(engine: sa.Engine, config: Config | None = None, encoder: str | None = None,
                  batch_size: int = 32, workers: int = 0, pca_dims: int = 100, weights: Path | None = None,
                  progress: bool = True, compile: bool = False) -> dict:
    """Encode every stored image into a new model run and swap it in; return a summary with calibration figures.

    ``compile`` runs the encoder through ``torch.compile`` (needs a C++ compiler on the CPU; about 10 s of warm-up,
    then 1.6-1.8x faster on this 2-core CPU, see docs/benchmarks.md).
    """
    from marconi.embed.images import encode_images as encode_stream
    from marconi.embed.images import load_encoder

    config = config or Config()
    name = encoder or config.encoder
    t0 = time.time()
    enc = load_encoder(name, device=config.device, cache_dir=config.model_dir, weights_path=weights, compile=compile)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM images")).scalar()
        labels_by_id = dict(conn.execute(sa.text("SELECT id, label FROM images")).all())
    if n == 0:
        raise RuntimeError("no images to encode: import some first (`marconi import images DIR`)")
    params = {"encoder": enc.describe(), "pca_dims": pca_dims, "batch_size": batch_size, "workers": workers}
    with engine.begin() as conn:
        run_id = vdb.create_run(conn, "images", name, params, min(pca_dims, CUBE_MAX_DIM))
    try:
        ids, feats, failures = [], [], []
        for keys, f, failed in encode_stream(enc, _Sized(_stream_images(engine), n), batch_size=batch_size,
                                             workers=workers, progress=progress, max_pixels=config.max_image_pixels):
            ids += keys
            feats.append(f)
            failures += failed
        full = np.vstack(feats).astype(np.float32)
        encode_s = time.time() - t0
        pca = PCA.fit(full, pca_dims)
        reduced = pca.transform(full)
        # ranked like the served index (PCA space), described by full-vector similarities like the search
        cal, report = calibrate(full, [labels_by_id[i] for i in ids], rank=reduced)
        metrics = {"encode_seconds": round(encode_s, 2), "images_per_second": round(len(ids) / encode_s, 1),
                   "failed": len(failures), "pca_dims": int(pca.components.shape[0]), "calibration": cal,
                   "leave_one_out": report, "device": str(enc.device)}
        with engine.begin() as conn:
            vdb.save_artifact(conn, run_id, "pca.npz", pca.to_bytes())
            staging = vdb.create_staging(conn, "image_vectors")
            rows = ((iid, run_id, to_cube(reduced[i]), to_pg_array(full[i])) for i, iid in enumerate(ids))
            written = vdb.load_staging(conn, staging, ["image_id", "run_id", "vec", "full_vec"], rows)
            vdb.index_staging(conn, "image_vectors")
            conn.execute(sa.text("UPDATE model_runs SET dims = :d WHERE id = :i"),
                         {"d": int(pca.components.shape[0]), "i": run_id})
            vdb.swap_in(conn, "images", run_id, written, metrics)
    except BaseException as exc:
        with engine.begin() as conn:
            vdb.fail_run(conn, run_id, f"{type(exc).__name__}: {exc}")
        raise
    for key, reason in failures:
        log.warning("image %s not encoded: %s", key, reason)
    log.info("image model run %d serving: %d vectors (%s), %.1f img/s, leave-one-out %s", run_id, written, name,
             metrics["images_per_second"], report)
    return {"run_id": run_id, "vectors": written, "encoder": name, **metrics}


# ---------------------------------------------------------------------------------------------------- search
class NoImageModel(RuntimeError):
    """No image model run is serving."""


@dataclass(frozen=True)
class _Serving:
    """What answers queries for one serving run; replaced as a whole, so a request never mixes two runs."""

    run_id: int
    encoder_name: str
    encoder: object
    pca: PCA
    cal: Calibration


class ImageSearcher:
    """Answers image queries with the serving run's encoder, PCA and calibration (reloaded when the run changes).

    Safe to share between threads (gunicorn's threaded workers): the serving state is one immutable snapshot.
    """

    def __init__(self, config: Config):
        self.config = config
        self._lock = threading.Lock()
        self._encoders: dict[str, object] = {}
        self._serving: _Serving | None = None

    def _refresh(self, conn: sa.Connection) -> tuple[dict, _Serving]:
        run = vdb.serving_run(conn, "images")
        if run is None:
            raise NoImageModel("no image model is serving yet: run `marconi import images DIR` and "
                               "`marconi encode images`")
        serving = self._serving
        if serving is None or serving.run_id != run["id"]:
            with self._lock:
                serving = self._serving
                if serving is None or serving.run_id != run["id"]:
                    from marconi.embed.images import load_encoder

                    name = run["model"]
                    if name not in self._encoders:
                        self._encoders[name] = load_encoder(name, device=self.config.device,
                                                            cache_dir=self.config.model_dir)
                    serving = _Serving(run["id"], name, self._encoders[name],
                                       PCA.from_bytes(vdb.load_artifact(conn, run["id"], "pca.npz")),
                                       Calibration.from_dict(run["metrics"]["calibration"]))
                    self._serving = serving
        return run, serving

    def search(self, conn: sa.Connection, img, k: int = 10, candidates: int | None = None,
               exclude_ids: tuple = (), rerank: bool = False) -> dict:
        """Return the k most similar stored images to a PIL image, with similarity and a calibrated confidence.

        The cube index returns ``candidates`` (default max(5k, 50)) ordered by their distance in PCA space. Each
        match's ``similarity`` is the score the list is ordered by, so it never rises down the list: the cosine in
        PCA space (1 - d²/2 for unit vectors at cube distance d), or with ``rerank`` the cosine of the full feature
        vectors, by which the candidates are then re-ordered (measured worse on Caltech-101, docs/evaluation.md,
        so off by default). The confidence is always computed from the full-vector cosines, as it was calibrated.
        """
        from marconi.embed.images import encode_image

        run, serving = self._refresh(conn)
        f = encode_image(serving.encoder, img)
        return self._answer(conn, run, serving, f, serving.pca.transform(f)[0], k, candidates, exclude_ids, rerank)

    def similar(self, conn: sa.Connection, image_id: int, k: int = 10, rerank: bool = False) -> dict | None:
        """Like :meth:`search`, for a stored image: its own vectors are the query and it is left out of the answer.

        Returns None when the image has no vector in the serving run (not encoded yet).
        """
        run, serving = self._refresh(conn)
        stored = neighbours.image_vectors_of(conn, image_id)
        if stored is None:
            return None
        q, f = stored
        return self._answer(conn, run, serving, f, q, k, None, (image_id,), rerank)

    def _answer(self, conn: sa.Connection, run: dict, serving: _Serving, f: np.ndarray, q: np.ndarray, k: int,
                candidates: int | None, exclude_ids: tuple, rerank: bool) -> dict:
        """Rank, score and describe the candidates for full query vector ``f`` and its PCA projection ``q``."""
        n_cand = candidates or max(5 * k, 50)
        cands = neighbours.nearest_images(conn, q, n_cand + len(exclude_ids))
        cands = [c for c in cands if c["image_id"] not in exclude_ids]
        for c in cands:
            c["full_similarity"] = float(np.clip(c["full_vec"] @ f, 0.0, 1.0))
            c["similarity"] = c["full_similarity"] if rerank else float(np.clip(1 - c["distance"] ** 2 / 2, 0, 1))
        if rerank:
            cands.sort(key=lambda c: -c["full_similarity"])
        meta = neighbours.images_by_id(conn, [c["image_id"] for c in cands[:max(k, 10)]])
        top10 = cands[:10]
        feats = confidence_features(np.array([c["full_similarity"] for c in top10]),
                                    [meta[c["image_id"]]["label"] for c in top10])
        confidence = serving.cal(feats) if top10 else 0.0
        matches = []
        for c in cands[:k]:
            m = meta[c["image_id"]]
            matches.append({**m, "id": c["image_id"], "distance": round(c["distance"], 6),
                            "similarity": round(c["similarity"], 4)})
        return {"model_run": run["id"], "encoder": serving.encoder_name, "confidence": round(confidence, 4),
                "matches": matches}


def eval_images(engine: sa.Engine, queries: Path, config: Config | None = None, k: int = 10,
                progress: bool = True, rerank: bool | None = None) -> dict:
    """P@1 and P@10 of label matches for a labelled folder tree of queries, through the served search path.

    A query whose exact bytes are in the index is answered with itself excluded (leave-one-out).
    """
    import hashlib

    from marconi.embed.imageio import ImageError, load_image

    config = config or Config()
    rerank = config.image_rerank if rerank is None else rerank
    searcher = ImageSearcher(config)
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
            own = conn.execute(sa.text("SELECT id FROM images WHERE sha256 = :s"),
                               {"s": hashlib.sha256(data).hexdigest()}).scalar()
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
            "confidence_auc": _r(auc(conf_a, right_a)),
            "mean_confidence_right": round(float(conf_a[right_a].mean()), 4) if right_a.any() else None,
            "mean_confidence_wrong": round(float(conf_a[~right_a].mean()), 4) if (~right_a).any() else None}
