"""Image → words: each image's top classes and readable tags, from the classifier's probabilities.

Pure functions over numpy arrays and the class vocabulary (no database, no model), so they are unit-tested alone;
:func:`everyday_words` reads the word list they are given.
A tag is a class name or a broader WordNet word of one of the image's top classes; its score is the summed
probability of the top classes that carry it, so "dog" scores the probability that the photo shows any dog.

Tags come in the order they are shown (``image_tags.rank``): by score / breadth ** SPECIFICITY_POWER, the breadth
of a word being how many of the vocabulary's classes it covers (1 for a class name, 118 for "dog", 398 for
"animal"), so a specific word shown first says more than a general one that is merely more certain (a cheetah
photo: "cheetah, big cat, feline" rather than "carnivore, feline, big cat"); a class's other names (Acinonyx
jubatus, chetah) follow, stored for SQL but not crowding the first five, and broader words that are not everyday
English (a word outside GloVe's 50,000 most frequent: angiosperm, chordate, placental) come last. Measured in
bench/eval_text_tags.py.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Container, Iterator, Sequence

import numpy as np

from marconi.text.vocabulary import tokens

log = logging.getLogger(__name__)

TOP_CLASSES = 10  # stored per image for text search (ConSE uses the top 10)
TAG_CLASSES = 5  # classes whose names and broader words become tags
MIN_TAG_SCORE = 0.01
MAX_TAGS = 25
BROADER_DEPTH = 3  # broader words from the 3 nearest WordNet hypernyms (dalmatian → dog, canine, domestic animal)
# only the first name of each (dog, not also "domestic dog" and "Canis familiaris"): every name lifted the tag match
# of the 5 strongest classes' words 0.512 → 0.522 but crowded an image's 5 best tags with synonyms of one broader
# word (0.31 of them name the folder, against 0.41 with first names; bench/eval_text_tags.py, issue #11)
BROADER_ALL_NAMES = False
# the shown order divides a tag's score by (classes it covers) ** this: chosen among 0, 0.25, 0.5, 0.75, 1 on the
# even Caltech folders (the five shown tags name the folder for 0.402 of their images, against 0.372 by score alone)
# and measured on the odd ones: 0.495 against 0.482 (bench/eval_text_tags.py, issue #11)
SPECIFICITY_POWER = 0.5
# broader words with a word outside GloVe's this many most frequent are shown last: chosen among 50k, 100k and 200k
# on the even folders (0.410 against 0.402 without the rule), 0.501 against 0.495 on the odd ones
COMMON_WORDS = 50_000


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


def tags_for(classes: Sequence[int], probs: Sequence[float], vocabulary: Sequence, k: int = TAG_CLASSES,
             common: Container[str] | None = None) -> list[tuple[str, float, bool]]:
    """Return (tag, score, direct) for one image in the order they are shown: ``direct`` for class names, else a
    broader word.

    ``classes``/``probs`` are the image's top classes (most probable first); ``vocabulary[i]`` is a
    :class:`marconi.text.vocabulary.ImageNetClass` (its names, and broader words from its nearest hypernyms). The
    ``MAX_TAGS`` highest scores are kept; the first names of the classes and the broader words come first, by score /
    breadth ** SPECIFICITY_POWER (:func:`word_breadth`), then the classes' other names by score, then (given the
    ``common`` words, :func:`marconi.text.words.common_words`) broader words with a word not among them.
    """
    scores: dict[str, float] = {}
    direct: dict[str, bool] = {}
    first_names: set[str] = set()
    for c, p in list(zip(classes, probs, strict=True))[:k]:
        entry = vocabulary[int(c)]
        first_names.add(entry.names[0].lower())
        for word, is_name in _unique(tag_words(entry)):
            scores[word] = scores.get(word, 0.0) + float(p)
            direct[word] = direct.get(word, False) or is_name
    kept = sorted(scores.items(), key=lambda kv: (-kv[1], not direct[kv[0]], kv[0]))
    kept = [(w, s) for w, s in kept if s >= MIN_TAG_SCORE][:MAX_TAGS]
    breadth = word_breadth(vocabulary)

    def shown_order(item: tuple[str, float]) -> tuple:
        word, score = item
        if direct[word] and word not in first_names:  # another name of a class
            return (1, -score, word)
        uncommon = common is not None and not direct[word] and any(t not in common for t in tokens(word))
        return (2 if uncommon else 0, -score / breadth.get(word, 1) ** SPECIFICITY_POWER, not direct[word], word)

    return [(w, round(s, 4), direct[w]) for w, s in sorted(kept, key=shown_order)]


@functools.cache
def everyday_words() -> frozenset[str] | None:
    """Return GloVe's COMMON_WORDS most frequent words for :func:`tags_for`, or None without the GloVe package (then
    every broader word counts as everyday English; said once)."""
    from marconi.text.words import WordVectorsUnavailable, common_words

    try:
        return common_words(COMMON_WORDS)
    except WordVectorsUnavailable as exc:
        log.warning("tags are ordered without the everyday-word rule: %s", exc)
        return None


_BREADTH: dict[int, tuple[Sequence, dict[str, int]]] = {}


def word_breadth(vocabulary: Sequence) -> dict[str, int]:
    """{broader word: how many classes of ``vocabulary`` have it among their broader words at any depth}, computed
    once per vocabulary object ("dog": 118 of ImageNet's classes); a class name not listed counts 1."""
    cached = _BREADTH.get(id(vocabulary))
    if cached is not None and cached[0] is vocabulary:
        return cached[1]
    counts: dict[str, int] = {}
    for entry in vocabulary:
        for word in {w.lower() for w in entry.broader_words()}:
            counts[word] = counts.get(word, 0) + 1
    _BREADTH[id(vocabulary)] = (vocabulary, counts)
    return counts


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
             vocabulary: Sequence, common: Container[str] | None = None) -> Iterator[tuple]:
    """Rows for ``image_tags``: (image_id, run_id, tag, score, direct, rank), rank 1 shown first."""
    for row, image_id in enumerate(image_ids):
        for rank, (tag, score, is_name) in enumerate(tags_for(classes[row], probs[row], vocabulary,
                                                              common=common), start=1):
            yield image_id, run_id, tag, score, is_name, rank
