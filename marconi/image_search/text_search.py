"""Words → images: a text query answered from the pixels only, through the classes the images show.

Each indexed image stores its top ImageNet classes with their probabilities (``image_classes``). A query becomes a
weight per class (:class:`marconi.text.query.ClassSpace`: the WordNet senses of its words, so "dog" reaches every
breed, plus the sentence-vector match of the query with each class's texts, all-MiniLM-L6-v2), and an image scores
Σ weight(class) × score(class, image) ** power over its stored classes: one SQL statement over the inverted index.
The score is sqrt(p(class | image)) averaged with that of the image's 5 nearest images (:mod:`.smoothing`); the
power is 0.5 for a query of one or two words and 1 for a description (:class:`marconi.text.query.ClassSpaceParams`).
Labels and descriptions stored with images are never used, so a collection without labels is searchable too.
The confidence is P(the best image matches the words), a logistic over the best score, fitted on held-apart
queries (:data:`TEXT_CALIBRATION`); each match shows its score relative to the best, times the
confidence, so it falls down the list.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import sqlalchemy as sa

from marconi.config import Config
from marconi.cooperative import off_loop
from marconi.db import image_words as words_db
from marconi.errors import BadRequest
from marconi.image_search.calibration import Calibration
from marconi.image_search.request import MAX_QUERY_CHARS

log = logging.getLogger(__name__)

TEXT_ENCODER = "minilm"
# P(the best image matches the words) from the best score over the query's largest class weight: fitted by
# `bench/calibrate_text_confidence.py --database <a demo home>` on half of the Caltech folders plus ImageNet classes
# the collection lacks, on the served two-view index scored as served (ClassSpaceParams.score_power); on the other
# half AUC 0.873, mean confidence 0.71 when right, 0.26 when wrong (0.883 / 0.74 / 0.25 before score_power, 2026-12-05)
TEXT_CALIBRATION = Calibration(np.array([5.6102]), -4.8601)
NO_WORDS = "none of these words is known; try other words (for example 'dog', 'bicycle' or 'a red car')"


class TextSearcher:
    """Turns words into class weights and asks the database for the best images; safe to share between threads."""

    def __init__(self, config: Config):
        """Keep the settings; the text encoder, the class texts' vectors and WordNet load at the first query."""
        self.config = config
        self._lock = threading.Lock()
        self._space = None

    def space(self):
        """The query → class-weights model (loaded once per process; the class vectors are cached on disk)."""
        if self._space is None:
            with self._lock:
                if self._space is None:
                    from marconi.encoders import load_encoder
                    from marconi.text.query import ClassSpace, class_text_vectors

                    encoder = off_loop(load_encoder, TEXT_ENCODER, device=self.config.device,
                                       cache_dir=self.config.model_dir)
                    self._space = ClassSpace(encoder, off_loop(class_text_vectors, encoder, self.config.model_dir))
        return self._space

    def search(self, conn: sa.Connection, text: str, k: int = 10) -> dict:
        """Return the answer for a text query, shaped like a photo search's (model run, confidence, matches)."""
        text = (text or "").strip()
        if not text:
            raise BadRequest("give some words to search for, e.g. ?q=dog on a beach")
        if len(text) > MAX_QUERY_CHARS:
            raise BadRequest(f"the text query is limited to {MAX_QUERY_CHARS} characters")
        if "\x00" in text:
            raise BadRequest("the text query must not contain NUL characters")
        space = self.space()
        query = off_loop(space.query, text)
        rows = []
        if query.known:
            rows = words_db.images_by_classes(conn, query.classes, query.weights, k, query.score_power)
        runs = {r["run_id"] for r in rows}
        if len(runs) > 1:
            raise AssertionError(f"a text answer mixed image runs {sorted(runs)}")
        if not runs:  # nothing matched: the answer still names the serving run, and needs one
            runs = {_serving_run_id(conn)}
        confidence = 0.0
        if rows:
            confidence = TEXT_CALIBRATION(np.array([float(rows[0]["score"]) / float(query.weights.max())]))
        # the best match shows the confidence; the others their score relative to it (so it falls down the list)
        sims = [confidence * float(r["score"]) / float(rows[0]["score"]) for r in rows] if rows else []
        confidence = round(confidence, 4)
        confident = confidence >= self.config.image_confident_threshold
        if not query.known:
            message = NO_WORDS
        elif confident:
            message = "good match"
        else:
            message = "nothing in the collection looks much like these words; the closest images are shown anyway"
        matches = [{**{key: v for key, v in r.items() if key not in ("image_id", "run_id", "score")},
                    "id": r["image_id"], "distance": None, "similarity": round(sim, 4)}
                   for r, sim in zip(rows, sims, strict=True)]
        return {"model_run": runs.pop(), "encoder": TEXT_ENCODER, "confidence": confidence, "confident": confident,
                "message": message, "query": {"text": text, "senses": list(query.senses)}, "matches": matches}


def _serving_run_id(conn: sa.Connection) -> int:
    """The serving image run's id; NoImageModel when there is none."""
    from marconi import runs
    from marconi.image_search.search import NoImageModel

    run = runs.serving_run(conn, "images")
    if run is None:
        raise NoImageModel("no image model is serving yet: run `marconi import images DIR` and `marconi encode images`")
    return run["id"]


def photo_tags(encoder, img, limit: int = 20) -> list[dict]:
    """Tags of a photo that is not stored (one image, or an animated one's frames): its top classes' names and
    broader words, as an indexed image gets."""
    from marconi.image_search import tagging
    from marconi.text.vocabulary import imagenet_classes

    if not encoder.classes:
        raise BadRequest(f"the serving image encoder ({encoder.name}) has no classifier head, so it cannot tag photos")
    _, probs = off_loop(encoder.encode_image, img, with_classes=True)
    classes, p = tagging.top_classes(probs[None, :])
    return [{"tag": t, "score": s, "direct": d}
            for t, s, d in tagging.tags_for(classes[0], p[0], imagenet_classes(), common=tagging.everyday_words())
            ][:limit]
