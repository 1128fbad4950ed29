"""Offline quality of words → images and image → tags, through the served text-search path.

Ground truth comes from a labelled folder tree ``<label>/<image>`` whose files are in the index (matched by their
bytes' SHA-256, so the index itself may hold no labels at all). Each folder name is a query ("Faces_easy" → "faces
easy"); the ranker never sees labels. Reported: mean P@10, mAP over the first 100 answers, and the tag match: the
share of images whose top-5 tags (class names and broader words of their 5 most probable classes) share a word
with their folder name. ``tag_match@5`` is the first definition (exact words; the first name of each of the 3
nearest hypernyms); ``tag_match@5_served_words`` counts the words the tags are served with (every name of those
hypernyms: "motorbike" for a moped) and compares WordNet base forms ("Leopards" matches "leopard").
``tag_match@5_shown`` is the share of images whose five tags shown first (``image_tags.rank``, what a page and an
answer show) share a word (base forms) with their folder name. ``tag_match_ceiling`` is the share of images whose
folder name shares a word (base forms) with *any* tag the tagger can give, whatever the pixels: the most any tagger
over this vocabulary could reach on these labels.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from marconi.config import Config
from marconi.db import image_words as words_db
from marconi.db.images import image_id_by_sha256
from marconi.errors import BadRequest
from marconi.image_search import tagging
from marconi.image_search.text_search import TextSearcher
from marconi.importers.images import image_files
from marconi.progress import progress as progress_bar

RANKED = 100


def query_of(label: str) -> str:
    """The words a person would type for a folder name: "Faces_easy" → "faces easy", "car_side" → "car side"."""
    return re.sub(r"[_\-]+", " ", label).strip().lower()


def average_precision(ranked: list[bool], relevant: int) -> float:
    """Average precision of one ranked list of hits (relevant items not retrieved count as misses)."""
    hits, total = 0, 0.0
    for rank, hit in enumerate(ranked, start=1):
        if hit:
            hits += 1
            total += hits / rank
    return total / relevant if relevant else 0.0


def ground_truth(engine: sa.Engine, folder: Path) -> dict[int, str]:
    """{image id: folder label} for the files of ``folder`` that are in the index."""
    truth = {}
    with engine.connect() as conn:
        for path in image_files(folder):
            rel = path.relative_to(folder)
            if len(rel.parts) < 2:
                continue
            image_id = image_id_by_sha256(conn, hashlib.sha256(path.read_bytes()).hexdigest())
            if image_id is not None:
                truth[image_id] = rel.parts[0]
    return truth


def eval_text_images(engine: sa.Engine, folder: Path, config: Config | None = None, progress: bool = True) -> dict:
    """Return P@10, mAP@100 and the top-5 tag match for the folder's labels as text queries."""
    from marconi.text.vocabulary import imagenet_classes, tokens
    from marconi.text.wordnet import WordNetNouns

    config = config or Config()
    truth = ground_truth(engine, Path(folder))
    if not truth:
        raise BadRequest(f"none of the images under {folder} is in the index: import and encode them first")
    labels = sorted(set(truth.values()))
    searcher = TextSearcher(config)
    p10, aps = [], []
    with engine.connect() as conn:
        for label in progress_bar(labels, unit="query", desc="text queries", enabled=progress):
            answer = searcher.search(conn, query_of(label), RANKED)
            hits = [truth.get(m["id"]) == label for m in answer["matches"]]
            p10.append(float(np.mean(hits[:10])) if hits else 0.0)
            aps.append(average_precision(hits, sum(1 for v in truth.values() if v == label)))
        top = words_db.top_classes_of(conn, list(truth), tagging.TAG_CLASSES)
        shown = words_db.shown_tags_of(conn, list(truth), 5)
    vocabulary = imagenet_classes()
    wordnet = WordNetNouns()

    def forms(words: set[str]) -> set[str]:
        return {f for w in words for f in (w, *wordnet.base_forms(w))}

    vocabulary_words = forms({t for entry in vocabulary for tag, _ in tagging.tag_words(entry) for t in tokens(tag)})
    matched, matched_forms, matched_shown, reachable = [], [], [], []
    for image_id, label in truth.items():
        words, served = set(), set()
        for c in top.get(image_id, []):
            entry = vocabulary[c]
            for phrase in (*entry.names, *entry.broader_words(tagging.BROADER_DEPTH, first_only=True)):
                words |= set(tokens(phrase))
            for tag, _ in tagging.tag_words(entry):
                served |= set(tokens(tag))
        asked = set(tokens(query_of(label)))
        matched.append(bool(words & asked))
        matched_forms.append(bool(forms(served) & forms(asked)))
        matched_shown.append(bool(forms({t for tag in shown.get(image_id, []) for t in tokens(tag)}) & forms(asked)))
        reachable.append(bool(forms(asked) & vocabulary_words))
    return {"queries": len(labels), "images": len(truth), "P@10": round(float(np.mean(p10)), 4),
            f"mAP@{RANKED}": round(float(np.mean(aps)), 4), "tag_match@5": round(float(np.mean(matched)), 4),
            "tag_match@5_served_words": round(float(np.mean(matched_forms)), 4),
            "tag_match@5_shown": round(float(np.mean(matched_shown)), 4),
            "tag_match_ceiling": round(float(np.mean(reachable)), 4)}
