"""Image → words: each image's top classes and readable tags, from the classifier's probabilities.

Pure functions over numpy arrays and the class vocabulary (no database, no model), so they are unit-tested alone.
A tag is a class name or a broader WordNet word of one of the image's top classes; its score is the summed
probability of the top classes that carry it, so "dog" scores the probability that the photo shows any dog.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

TOP_CLASSES = 10  # stored per image for text search (ConSE uses the top 10)
TAG_CLASSES = 5  # classes whose names and broader words become tags
MIN_TAG_SCORE = 0.01
MAX_TAGS = 25
BROADER_DEPTH = 3  # broader words from the 3 nearest WordNet hypernyms (dalmatian → dog, canine, domestic animal)
# only the first name of each (dog, not also "domestic dog" and "Canis familiaris"): every name lifted the tag match
# of the 5 strongest classes' words 0.512 → 0.522 but crowded an image's 5 best tags with synonyms of one broader
# word (0.31 of them name the folder, against 0.41 with first names; bench/eval_text_tags.py, issue #11)
BROADER_ALL_NAMES = False


def tag_words(entry) -> list[tuple[str, bool]]:
    """Return (word, is a name of the class) for the tags one class gives: its names, then its broader words."""
    broader = entry.broader_words(BROADER_DEPTH, first_only=not BROADER_ALL_NAMES)
    return [(w.lower(), True) for w in entry.names] + [(w.lower(), False) for w in broader]


def top_classes(probs: np.ndarray, k: int = TOP_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Return (class indices, probabilities) of each row's ``k`` most probable classes, most probable first."""
    k = min(k, probs.shape[1])
    idx = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    p = np.take_along_axis(probs, idx, axis=1)
    order = np.argsort(-p, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(p, order, axis=1)


def tags_for(classes: Sequence[int], probs: Sequence[float], vocabulary: Sequence,
             k: int = TAG_CLASSES) -> list[tuple[str, float, bool]]:
    """Return (tag, score, direct) for one image, best first: ``direct`` for class names, else a broader word.

    ``classes``/``probs`` are the image's top classes (most probable first); ``vocabulary[i]`` is a
    :class:`marconi.text.vocabulary.ImageNetClass` (its names, and broader words from its nearest hypernyms).
    """
    scores: dict[str, float] = {}
    direct: dict[str, bool] = {}
    for c, p in list(zip(classes, probs, strict=True))[:k]:
        for word, is_name in _unique(tag_words(vocabulary[int(c)])):
            scores[word] = scores.get(word, 0.0) + float(p)
            direct[word] = direct.get(word, False) or is_name
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], not direct[kv[0]], kv[0]))
    return [(w, round(s, 4), direct[w]) for w, s in ranked if s >= MIN_TAG_SCORE][:MAX_TAGS]


def _unique(words: list[tuple[str, bool]]) -> Iterator[tuple[str, bool]]:
    """Each word once per class (a name that is also a broader word counts as a name)."""
    seen: dict[str, bool] = {}
    for word, is_name in words:
        seen[word] = seen.get(word, False) or is_name
    yield from seen.items()


def class_rows(image_ids: Sequence[int], run_id: int, classes: np.ndarray, probs: np.ndarray,
               scores: np.ndarray) -> Iterator[tuple]:
    """Rows for ``image_classes``: (image_id, run_id, class_index, p, score) for each image's top classes."""
    for row, image_id in enumerate(image_ids):
        for c, p, score in zip(classes[row], probs[row], scores[row], strict=True):
            yield image_id, run_id, int(c), float(p), float(score)


def tag_rows(image_ids: Sequence[int], run_id: int, classes: np.ndarray, probs: np.ndarray,
             vocabulary: Sequence) -> Iterator[tuple]:
    """Rows for ``image_tags``: (image_id, run_id, tag, score, direct)."""
    for row, image_id in enumerate(image_ids):
        for tag, score, is_name in tags_for(classes[row], probs[row], vocabulary):
            yield image_id, run_id, tag, score, is_name
