"""Words → images: a text query answered from the pixels only, through the classes the images show.

Each indexed image stores its top ImageNet classes with their probabilities (``image_classes``). A query is turned
into a weight per class: how well the query matches the class, from the sentence vectors of the query and of the
class ("name: definition", all-MiniLM-L6-v2), raised where a query word names the class or a broader word of it
(so "dog" reaches every breed). An image scores Σ p(class | image) × weight(class): ConSE (Norouzi et al. 2014)
with the keyword match fused in. Labels and descriptions stored with images are never used, so a collection without
labels is searchable too. The score lies in [0, 1]: the share of what the image shows that matches the query.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from marconi.config import Config
from marconi.db import image_words as words_db
from marconi.errors import BadRequest

log = logging.getLogger(__name__)

TEXT_ENCODER = "minilm"
CLASS_TEXT_STYLE = "definition"
QUERY_CLASSES = 50  # classes a query reaches (its best-matching ones)
KEYWORD_WEIGHT = 0.5  # share of a class's weight given by a query word naming it (or a broader word of it)
MAX_QUERY_CHARS = 200
NO_WORDS = "none of these words is known; try other words (for example 'dog', 'bicycle' or 'a red car')"


@dataclass(frozen=True)
class QueryClasses:
    """A query as weights over the classifier's classes (only those it reaches), and the words it was made of."""

    classes: np.ndarray
    weights: np.ndarray
    words: tuple[str, ...]


class TextSearcher:
    """Turns words into class weights and asks the database for the best images; safe to share between threads."""

    def __init__(self, config: Config):
        """Keep the settings; the text encoder and the class vectors are loaded at the first query."""
        self.config = config
        self._lock = threading.Lock()
        self._encoder = None
        self._class_vectors: np.ndarray | None = None
        self._class_words: list[frozenset[str]] | None = None

    def _load(self):
        """Load the sentence encoder and the class vectors (cached on disk under the model directory)."""
        with self._lock:
            if self._class_vectors is not None:
                return
            from marconi.encoders import load_encoder
            from marconi.text.vocabulary import class_texts, imagenet_classes

            encoder = load_encoder(TEXT_ENCODER, device=self.config.device, cache_dir=self.config.model_dir)
            texts = class_texts(CLASS_TEXT_STYLE)
            digest = hashlib.sha256("\n".join([TEXT_ENCODER, *texts]).encode()).hexdigest()[:16]
            cache = self.config.model_dir / f"class-vectors-{TEXT_ENCODER}-{digest}.npy"
            if cache.is_file():
                vectors = np.load(cache)
            else:
                vectors = encoder.encode_texts(texts)
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(".tmp.npy")
                np.save(tmp, vectors)
                tmp.replace(cache)
            self._class_words = [c.words() for c in imagenet_classes()]
            self._encoder = encoder
            self._class_vectors = vectors

    def query_classes(self, text: str) -> QueryClasses:
        """Return the query's class weights; raise BadRequest for an empty or over-long query."""
        from marconi.text.words import query_words

        text = (text or "").strip()
        if not text:
            raise BadRequest("give some words to search for, e.g. ?q=dog on a beach")
        if len(text) > MAX_QUERY_CHARS:
            raise BadRequest(f"the text query is limited to {MAX_QUERY_CHARS} characters")
        if "\x00" in text:
            raise BadRequest("the text query must not contain NUL characters")
        words = tuple(query_words(text))
        if not words:
            return QueryClasses(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), ())
        self._load()
        sims = self._class_vectors @ self._encoder.encode_texts([text])[0]
        named = np.array([bool(cw.intersection(words)) for cw in self._class_words])
        weights = (1 - KEYWORD_WEIGHT) * np.clip(sims, 0, 1) + KEYWORD_WEIGHT * named
        top = np.argsort(-weights, kind="stable")[:QUERY_CLASSES]
        top = top[weights[top] > 0]
        return QueryClasses(top, weights[top].astype(np.float32), words)

    def search(self, conn: sa.Connection, text: str, k: int = 10) -> dict:
        """Return the answer for a text query, shaped like a photo search's (model run, confidence, matches)."""
        query = self.query_classes(text)
        rows = words_db.images_by_classes(conn, query.classes, query.weights, k) if len(query.classes) else []
        runs = {r["run_id"] for r in rows}
        if len(runs) > 1:
            raise AssertionError(f"a text answer mixed image runs {sorted(runs)}")
        if not runs:  # nothing matched: the answer still names the serving run, and needs one
            runs = {_serving_run_id(conn)}
        confidence = round(float(rows[0]["score"]), 4) if rows else 0.0
        confident = confidence >= self.config.image_confident_threshold
        if not query.words:
            message = NO_WORDS
        elif confident:
            message = "good match"
        else:
            message = "nothing in the collection looks much like these words; the closest images are shown anyway"
        matches = [{**{key: v for key, v in r.items() if key not in ("image_id", "run_id", "score")},
                    "id": r["image_id"], "distance": None, "similarity": round(float(r["score"]), 4)} for r in rows]
        return {"model_run": runs.pop(), "encoder": TEXT_ENCODER, "confidence": confidence,
                "confident": confident, "message": message,
                "query": {"text": text.strip(), "words": list(query.words)}, "matches": matches}


def _serving_run_id(conn: sa.Connection) -> int:
    """The serving image run's id; NoImageModel when there is none."""
    from marconi import runs
    from marconi.image_search.search import NoImageModel

    run = runs.serving_run(conn, "images")
    if run is None:
        raise NoImageModel("no image model is serving yet: run `marconi import images DIR` and `marconi encode images`")
    return run["id"]


def photo_tags(encoder, img, limit: int = 20) -> list[dict]:
    """Tags of a photo that is not stored: its top classes' names and broader words, as an indexed image gets."""
    from marconi.image_search import tagging
    from marconi.text.vocabulary import imagenet_classes

    if not encoder.classes:
        raise BadRequest(f"the serving image encoder ({encoder.name}) has no classifier head, so it cannot tag photos")
    _, probs = encoder.encode_image(img, with_classes=True)
    classes, p = tagging.top_classes(probs[None, :])
    return [{"tag": t, "score": s, "direct": d}
            for t, s, d in tagging.tags_for(classes[0], p[0], imagenet_classes())][:limit]
