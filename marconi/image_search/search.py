"""Answer an image query: encode → kNN (cube GiST) → optional re-rank → calibrated confidence, one run per answer.

A model run's encoder, PCA and calibration form one immutable :class:`Snapshot`, cached per process per run id.
Every kNN statement returns its rows' ``run_id``: when that is not the snapshot's run (a new run was swapped in),
the snapshot of the rows' run is loaded and the query asked again with it (at most :data:`TRIES` times), so an
answer never combines one run's PCA or calibration with another run's vectors. A dimension-mismatch error from the
database is treated the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import sqlalchemy as sa
from PIL import Image

from marconi import runs
from marconi.config import Config
from marconi.cooperative import off_loop
from marconi.db import images as images_db
from marconi.errors import Forbidden, NotFound, Unavailable
from marconi.image_search.calibration import Calibration, confidence_features
from marconi.image_search.metric import METRIC_ARTIFACT, LearnedMetric
from marconi.image_search.pca import PCA

log = logging.getLogger(__name__)

TRIES = 3
SNAPSHOTS_KEPT = 4
GOOD_MATCH = "good match"
NO_GOOD_MATCH = "nothing in the collection looks much like this photo; the closest images are shown anyway"


class NoImageModel(Unavailable):
    """No image model run is serving."""

    code = "no_image_model"


class RunChanged(Unavailable):
    """The serving image run changed on every try of one request."""

    code = "model_changed"


@dataclass(frozen=True)
class Snapshot:
    """What answers queries for one model run; never changes, so a request that holds it never mixes two runs."""

    run_id: int
    encoder_name: str
    encoder: object
    pca: PCA
    cal: Calibration
    metric: LearnedMetric | None = None  # a run from `marconi train images`: its learned space

    def space(self, vectors: np.ndarray) -> np.ndarray:
        """Return encoder vectors (rows) in the space this run ranks in: the learned one, else as they are."""
        return np.atleast_2d(vectors) if self.metric is None else self.metric.transform(vectors)


Box = tuple[float, float, float, float]  # x, y, w, h in pixels of the photo at its full size


def query_shape(img: Image.Image | list[Image.Image]) -> dict:
    """The ``query`` part of an answer: the photo's size, and how many frames were pooled for an animated one."""
    frames = [img] if isinstance(img, Image.Image) else img
    return {"width": frames[0].width, "height": frames[0].height} | ({"frames": len(frames)} if len(frames) > 1
                                                                      else {})


def _dimension_error(exc: sa.exc.DataError) -> bool:
    """True for the database's complaint that two vectors have different dimensions."""
    return "dimension" in str(exc.orig).lower()


class ImageSearcher:
    """Answers image queries with the encoder, PCA and calibration of the run whose vectors answer them.

    Safe to share between threads (gunicorn's threaded workers): snapshots are immutable and built under a lock.
    """

    def __init__(self, config: Config, engine: sa.Engine | None = None):
        """Keep the settings and the engine (for the one-call methods); nothing is loaded before the first query."""
        self.config = config
        self.engine = engine
        self._lock = threading.Lock()
        self._encoders: dict[str, object] = {}
        self._snapshots: dict[int, Snapshot] = {}
        self._current: Snapshot | None = None

    # ------------------------------------------------------------------------------------------------ snapshots
    def _encoder(self, name: str):
        """Return the loaded encoder ``name`` (loaded once per process; call under the lock)."""
        if name not in self._encoders:
            from marconi.encoders import load_encoder

            self._encoders[name] = off_loop(load_encoder, name, device=self.config.device,
                                            cache_dir=self.config.model_dir)
        return self._encoders[name]

    def snapshot(self, conn: sa.Connection, run_id: int | None = None) -> Snapshot:
        """Return the snapshot of ``run_id`` (default: the one last used, else the serving run), loading it once.

        A ``run_id`` comes from vector rows just read, so its snapshot becomes the default for the next query.
        """
        if run_id is None:
            current = self._current
            if current is not None:
                return current
            run = runs.serving_run(conn, "images")
            if run is None:
                raise NoImageModel("no image model is serving yet: run `marconi import images DIR` and "
                                   "`marconi encode images`")
            run_id = run["id"]
        snap = self._snapshots.get(run_id)
        if snap is None:
            with self._lock:
                snap = self._snapshots.get(run_id)
                if snap is None:
                    snap = self._load(conn, run_id)
                    while len(self._snapshots) >= SNAPSHOTS_KEPT:
                        self._snapshots.pop(next(iter(self._snapshots)))
                    self._snapshots[run_id] = snap
        self._current = snap  # the serving run, or the run whose vectors a statement just returned
        return snap

    def _load(self, conn: sa.Connection, run_id: int) -> Snapshot:
        """Build the snapshot of one run from its row and its PCA (and learned metric) artifacts."""
        run = runs.run_by_id(conn, run_id)
        pca = runs.artifact(conn, run_id, "pca.npz")
        if run is None or pca is None or "calibration" not in (run["metrics"] or {}):
            raise NoImageModel(f"image model run {run_id} has no stored PCA or calibration; run "
                               "`marconi encode images` again")
        name = run["model"]
        metric = runs.artifact(conn, run_id, METRIC_ARTIFACT)
        return Snapshot(run_id, name, self._encoder(name), PCA.from_bytes(pca),
                        Calibration.from_dict(run["metrics"]["calibration"]),
                        LearnedMetric.from_bytes(metric) if metric is not None else None)

    def _forget_current(self) -> None:
        """Drop the current snapshot so the next one is the serving run's (after a dimension error)."""
        self._current = None

    # ------------------------------------------------------------------------------------------------- queries
    def search(self, conn: sa.Connection, img: Image.Image | list[Image.Image], k: int = 10,
               candidates: int | None = None, exclude_ids: tuple = (), rerank: bool | None = None) -> dict:
        """Return the answer for a PIL image: the k most similar stored images, a calibrated confidence, a message.

        ``img`` may be the sampled frames of an animated image: they are encoded and pooled as stored GIFs are.

        The cube index returns ``candidates`` (default max(5k, 50)) ordered by their distance in PCA space. Each
        match's ``similarity`` is the score the list is ordered by, so it never rises down the list: the cosine in
        PCA space (1 - d²/2 for unit vectors at cube distance d), or with ``rerank`` the cosine of the full feature
        vectors, by which the candidates are then re-ordered (measured worse on Caltech-101, docs/evaluation.md,
        so off by default: ``config.image_rerank``). The confidence always comes from the full-vector cosines, as
        it was calibrated.
        """
        n_cand = (candidates or max(5 * k, 50)) + len(exclude_ids)
        snap = self.snapshot(conn)
        features: dict[str, np.ndarray] = {}
        for _ in range(TRIES):
            f = features.get(snap.encoder_name)
            if f is None:
                f = features[snap.encoder_name] = off_loop(snap.encoder.encode_image, img)
            f = snap.space(f)[0]
            try:
                cands = images_db.nearest_images(conn, snap.pca.transform(f)[0], n_cand)
            except sa.exc.DataError as exc:
                if not _dimension_error(exc):
                    raise
                conn.rollback()
                log.info("image kNN: vector dimensions changed under run %d; reloading the serving run", snap.run_id)
                self._forget_current()
                snap = self.snapshot(conn)
                continue
            rows_run = cands[0]["run_id"] if cands else snap.run_id
            if rows_run == snap.run_id:
                return self._answer(snap, f, cands, k, exclude_ids, rerank, query_shape(img))
            log.info("image kNN: rows from run %d, snapshot was run %d; asking again", rows_run, snap.run_id)
            snap = self.snapshot(conn, rows_run)
        raise RunChanged("the image model changed during this request; please try again")

    def similar(self, conn: sa.Connection, image_id: int, k: int = 10, rerank: bool | None = None) -> dict:
        """Like :meth:`search`, for a stored image: its own vectors are the query and it is left out of the answer.

        Raises NotFound when no image has this id, or when it has no vector in the serving run (not encoded yet).
        """
        query, cands = images_db.similar_to_stored(conn, image_id, max(5 * k, 50) + 1)
        if query is None:
            raise NotFound(f"no image with id {image_id}")
        if query["full_vec"] is None:
            raise NotFound(f"image {image_id} is not in the serving index yet: run `marconi encode images`")
        snap = self.snapshot(conn, query["run_id"])  # the query and its neighbours came from one statement
        return self._answer(snap, snap.space(query["full_vec"])[0], cands, k, (image_id,), rerank,
                            {"image_id": image_id, "width": query["width"], "height": query["height"]})

    def _answer(self, snap: Snapshot, f: np.ndarray, cands: list[dict], k: int, exclude_ids: tuple,
                rerank: bool | None, query: dict) -> dict:
        """Rank, score and describe the candidates for the full query vector ``f``."""
        rerank = self.config.image_rerank if rerank is None else rerank
        cands = [c for c in cands if c["image_id"] not in exclude_ids]
        full = snap.space(np.stack([c["full_vec"] for c in cands])) if cands else np.zeros((0, len(f)))
        for c, vec in zip(cands, full, strict=True):
            c["full_similarity"] = float(np.clip(vec @ f, 0.0, 1.0))
            c["similarity"] = c["full_similarity"] if rerank else float(np.clip(1 - c["distance"] ** 2 / 2, 0, 1))
        if rerank:
            cands.sort(key=lambda c: -c["full_similarity"])
        top10 = cands[:10]
        feats = confidence_features(np.array([c["full_similarity"] for c in top10]), [c["label"] for c in top10])
        confidence = round(snap.cal(feats) if top10 else 0.0, 4)
        matches = []
        for c in cands[:k]:
            meta = {key: v for key, v in c.items() if key not in ("image_id", "run_id", "full_vec", "full_similarity")}
            matches.append({**meta, "id": c["image_id"], "distance": round(c["distance"], 6),
                            "similarity": round(c["similarity"], 4)})
        confident = confidence >= self.config.image_confident_threshold
        return {"model_run": snap.run_id, "encoder": snap.encoder_name, "confidence": confidence,
                "confident": confident, "message": GOOD_MATCH if confident else NO_GOOD_MATCH, "query": query,
                "matches": matches}

    # ---------------------------------------------------------------------------------- one call per request
    def search_bytes(self, data: bytes, k: int = 10, url: str | None = None, box: Box | None = None) -> dict:
        """Decode uploaded (or fetched) image bytes and answer them; ``url`` is echoed in the answer's query.

        With ``box`` (x, y, w, h in pixels of the photo at its full size), only that part of the photo is searched
        for; the answer's query describes the whole photo and adds the box used, clipped to it. The photo is decoded
        only as large as the encoder needs (:meth:`query_photo`).
        """
        photo = self.query_photo(data, box)
        with self.engine.connect() as conn:
            answer = self.search(conn, photo.frames, k)
        answer["query"] = photo.query | ({"url": url} if url else {})
        return answer

    def query_photo(self, data: bytes, box: Box | None = None):
        """Return the :class:`~marconi.image_search.query_photo.QueryPhoto` of uploaded bytes, decoded for the
        encoder of the serving run (its input size says how much smaller a large photo may be decoded).

        With no run serving, the configured encoder's input size is used, so that a bad photo is still answered
        as such (4xx) before the search says no model is serving (503).
        """
        from marconi.encoders import get_spec
        from marconi.image_search.query_photo import decode_query

        with self.engine.connect() as conn:
            try:
                need = self.snapshot(conn).encoder.preprocess.draft_size
            except NoImageModel:
                need = get_spec(self.config.encoder).preprocess.draft_size
        return off_loop(decode_query, data, self.config.max_image_pixels, need, box)

    def fetch_url(self, url: str) -> bytes:
        """Fetch the image at ``url`` under marconi.fetch's rules (switch, deadline, size, allowed addresses)."""
        from marconi.fetch import fetch_image_bytes
        from marconi.url_rules import FetchError, parse_networks

        if not self.config.url_fetch:
            raise Forbidden("this server does not fetch URLs (MARCONI_URL_FETCH=0); upload the photo as multipart "
                            "field 'image' instead", code="url_fetch_disabled")
        url = url.strip() if isinstance(url, str) else url
        t0 = time.perf_counter()
        try:
            data = fetch_image_bytes(url, max_bytes=self.config.max_upload_bytes,
                                     timeout=self.config.url_fetch_timeout,
                                     allow_networks=parse_networks(self.config.url_fetch_allow_networks))
        except FetchError as exc:
            log.info("URL fetch refused or failed (%s): %s", exc.code, exc)
            raise
        log.info("fetched %d bytes from %s in %.0f ms", len(data), urlsplit(url).hostname,
                 (time.perf_counter() - t0) * 1000)
        return data

    def search_url(self, url: str, k: int = 10, box: Box | None = None) -> dict:
        """Fetch the image at ``url`` (:meth:`fetch_url`), then answer it as :meth:`search_bytes` does."""
        data = self.fetch_url(url)
        return self.search_bytes(data, k, url=url.strip() if isinstance(url, str) else url, box=box)

    def similar_to(self, image_id: int, k: int = 10) -> dict:
        """Answer "more like this" for a stored image on a connection of its own (see :meth:`similar`)."""
        with self.engine.connect() as conn:
            return self.similar(conn, image_id, k)
