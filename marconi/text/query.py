"""Words → a weight per ImageNet class: the text half of text → image search, measured in bench/eval_text_methods.py.

A query weighs each of the 1,000 classes by two signals, added:

- **WordNet** (:func:`ClassSpace.wordnet_weights`): the query (the whole phrase, else each word, in base form:
  "leopards" → leopard) is looked up among WordNet's nouns. A class that *is* one of its senses or lies under one
  gets 1 ("dog" → every breed, "butterfly" → monarch, admiral, ...); any other class gets exp(-alpha · d), d the
  shortest WordNet path between the two (so "kangaroo", which ImageNet lacks, reaches wallaby). All senses count
  (the best one per class).
- **MiniLM** (:func:`ClassSpace.minilm_weights`): the cosine between the query's sentence vector and each class's
  texts ("name: definition", "names; broader words", "names"; averaged), mapped to ((cos - floor) / (1 - floor))²
  and 0 below the floor. It catches what WordNet lacks (misspellings, "brain" → brain coral, "garfield" → comic
  book) and times ``minilm_weight``; for a description of three content words or more ("a dog with black spots")
  it counts ``phrase_minilm_weight`` times, because its words together say more than each alone
  (bench/eval_text_phrases.py).

An image then scores Σ_c w(query, c) · sqrt(p(c | image)): the square root flattens the classifier's confident
peaks so that the second and third classes count too (measured better than p itself). The index stores that root
smoothed over each image's nearest images (``image_classes.score``); a query of one or two words raises it to
``score_power`` once more, a description to ``phrase_score_power`` (:attr:`QueryClasses.score_power`).
``top_classes`` keeps the query's strongest classes only, so that the score is a short sum (a SQL join on stored top
classes).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from marconi.text.counts import counted
from marconi.text.vocabulary import imagenet_classes, tokens
from marconi.text.wordnet import WordNetNouns
from marconi.text.words import STOP_WORDS

CLASS_TEXT_STYLES = ("definition", "broader", "names")


@dataclass(frozen=True)
class ClassSpaceParams:
    """How a query becomes class weights; defaults chosen on half of the Caltech classes (bench/eval_text_methods)."""

    alpha: float = 1.5  # WordNet: exp(-alpha · path length) for classes not under the query
    floor: float = 0.3  # MiniLM: cosines below this count 0
    power: float = 2.0  # MiniLM: ((cos - floor) / (1 - floor)) ** power
    minilm_weight: float = 1.0  # MiniLM's share, added to WordNet's
    top_classes: int = 50  # classes a query keeps (0: all 1,000)
    image_power: float = 0.5  # images score Σ w · p ** image_power (raw probabilities: score_images)
    # the stored score (smoothed √p) is raised to this for a query of fewer than phrase_words content words, and to
    # phrase_score_power for a description: chosen on the even folder names and phrases of the served two-view
    # index (names 0.676 -> 0.706 at 0.5), held on the odd ones (0.608 -> 0.616; descriptions best left at 1;
    # docs/evaluation.md)
    score_power: float = 0.5
    phrase_score_power: float = 1.0
    phrase_words: int = 3  # a query of this many content words or more is a description ...
    phrase_minilm_weight: float = 16.0  # ... and MiniLM's share is this instead of minilm_weight
    # the two rules below: chosen on the even phrases and folder names of the served two-view index, 2026-12-05
    # (docs/evaluation.md: numbers counted lift the even phrases 0.497 -> 0.525; neither moves an odd query or a name)
    head_classes: int = 130  # every class under the head noun is kept when it has at most this many (0: off)
    count_words: bool = True  # "two wheels": classes whose definitions count the same lead, other counts drop
    count_penalty: float = 0.25  # weight kept by a class whose definition gives the noun another count
    count_depth: int = 3  # definitions read for counts: the class's own and its hypernyms' this many steps up


@dataclass(frozen=True)
class QueryClasses:
    """A query as weights over classes (only those it reaches, strongest first) and what it was made of."""

    classes: np.ndarray
    weights: np.ndarray
    senses: tuple[str, ...] = ()
    best_cosine: float = 0.0
    dense: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32), repr=False)
    score_power: float = 1.0  # the exponent on an image's stored class score (ClassSpaceParams.score_power)

    @property
    def known(self) -> bool:
        """Return whether anything in the query matched: a WordNet sense, or a class text above the MiniLM floor."""
        return bool(len(self.classes))


class ClassSpace:
    """Turns text into class weights; holds the class texts' MiniLM vectors and WordNet paths (thread-safe)."""

    def __init__(self, encoder=None, class_vectors: np.ndarray | None = None, wordnet: WordNetNouns | None = None,
                 params: ClassSpaceParams | None = None):
        """Use ``encoder`` (a SentenceEncoder; None: WordNet only) and its ``class_vectors`` (styles × 1000 × dims;
        None: computed now, see :func:`class_text_vectors`)."""
        self.params = params or ClassSpaceParams()
        self.encoder = encoder
        self.wordnet = wordnet or WordNetNouns()
        self.classes = imagenet_classes()
        if encoder is not None and class_vectors is None:
            class_vectors = class_text_vectors(encoder)
        self.class_vectors = class_vectors
        self._lock = threading.Lock()
        self._by_ancestor: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._counts: dict[str, dict[int, set[int]]] | None = None

    def _ancestor_index(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{synset: (class indices, steps up from each class)} over every class and all of its WordNet ancestors."""
        with self._lock:
            if self._by_ancestor is None:
                rows: dict[str, tuple[list[int], list[int]]] = {}
                for c in self.classes:
                    for wnid, depth in [(c.wnid, 0), *self.wordnet.ancestors(c.wnid)]:
                        idx, dep = rows.setdefault(wnid, ([], []))
                        idx.append(c.index)
                        dep.append(depth)
                self._by_ancestor = {w: (np.array(i), np.array(d, dtype=np.float32)) for w, (i, d) in rows.items()}
        return self._by_ancestor

    def senses(self, text: str) -> list[str]:
        """Return the WordNet noun senses of the whole query, else of each of its words (stop words dropped)."""
        words = [t for t in tokens(text) if t not in STOP_WORDS]
        if not words:
            return []
        whole = self.wordnet.lookup(" ".join(words))
        return whole or list(dict.fromkeys(s for w in words for s in self.wordnet.lookup(w)))

    def wordnet_weights_of(self, text: str) -> tuple[np.ndarray, list[str]]:
        """Return the query's WordNet weights (:meth:`wordnet_weights` of its :meth:`senses`) and those senses."""
        senses = self.senses(text)
        return self.wordnet_weights(senses), senses

    def wordnet_weights(self, senses: list[str]) -> np.ndarray:
        """Return (1000,) weights: 1 for classes under a sense, else exp(-alpha · shortest path); 0 without senses."""
        by_ancestor = self._ancestor_index()
        dist = np.full(len(self.classes), np.inf, dtype=np.float32)
        under = np.zeros(len(self.classes), dtype=bool)
        for sense in senses:
            if sense in by_ancestor:
                under[by_ancestor[sense][0]] = True
            for wnid, up in [(sense, 0), *self.wordnet.ancestors(sense)]:
                if wnid in by_ancestor:
                    idx, depth = by_ancestor[wnid]
                    np.minimum.at(dist, idx, depth + up)
        weights = np.exp(-self.params.alpha * dist)
        weights[under] = 1.0
        return weights.astype(np.float32)

    def cosines(self, text: str) -> np.ndarray:
        """Return (1000,) mean cosine between the query's sentence vector and each class's texts (0 without MiniLM)."""
        if self.encoder is None or self.class_vectors is None:
            return np.zeros(len(self.classes), dtype=np.float32)
        query = self.encoder.encode_texts([text])[0]
        return (self.class_vectors @ query).mean(axis=0)

    def minilm_weights(self, cosines: np.ndarray) -> np.ndarray:
        """Return (1000,) ((cos - floor) / (1 - floor)) ** power, 0 below the floor."""
        p = self.params
        return (np.clip((cosines - p.floor) / (1 - p.floor), 0, None) ** p.power).astype(np.float32)

    def _base_form(self, word: str) -> str:
        """Return a word's first WordNet noun lemma ("wheels" → "wheel"), or the word itself."""
        forms = self.wordnet.base_forms(word)
        return forms[0] if forms else word

    def _class_counts(self) -> dict[str, dict[int, set[int]]]:
        """{noun: {class index: numbers}} said in each class's definition and its near hypernyms' (cached)."""
        with self._lock:
            if self._counts is None:
                out: dict[str, dict[int, set[int]]] = {}
                for c in self.classes:
                    glosses = [c.definition, *(self.wordnet.synset(h.wnid).definition for h in c.hypernyms
                                               if h.depth <= self.params.count_depth)]
                    for gloss in glosses:
                        for noun, values in counted(gloss, self._base_form).items():
                            out.setdefault(noun, {}).setdefault(c.index, set()).update(values)
                self._counts = out
        return self._counts

    def counted_weights(self, text: str, dense: np.ndarray) -> np.ndarray:
        """Return ``dense`` adjusted for the numbers in the query: for "two wheels", classes whose definitions (or
        their near hypernyms') say two wheels gain the query's largest weight, those saying another number of
        wheels keep ``count_penalty`` of theirs; unchanged when the query counts nothing."""
        asked = counted(text, self._base_form)
        if not asked:
            return dense
        out = dense.copy()
        top = float(dense.max(initial=0.0))
        for noun, values in asked.items():
            for index, said in self._class_counts().get(noun, {}).items():
                if said & values:
                    out[index] += top
                else:
                    out[index] *= self.params.count_penalty
        return out

    def head_senses(self, text: str) -> list[str]:
        """Return the senses of what the query asks for: the first run of up to three content words that WordNet
        knows as a noun ("dog" in "dog on a beach", "grand piano" in "grand piano in a hall")."""
        words = [t for t in tokens(text) if t not in STOP_WORDS]
        for start in range(len(words)):
            for n in (3, 2, 1):
                if start + n <= len(words):
                    senses = self.wordnet.lookup(" ".join(words[start:start + n]))
                    if senses:
                        return senses
        return []

    def head_classes(self, text: str) -> np.ndarray:
        """Return the classes under the query's head noun (:meth:`head_senses`) when there are at most
        ``head_classes`` of them (the 118 dog breeds for "dog"; not the 398 animals for "animal"), else none."""
        limit = self.params.head_classes
        if not limit:
            return np.zeros(0, dtype=np.int64)
        by_ancestor = self._ancestor_index()
        under = {int(i) for sense in self.head_senses(text) if sense in by_ancestor for i in by_ancestor[sense][0]}
        return np.array(sorted(under), dtype=np.int64) if len(under) <= limit else np.zeros(0, dtype=np.int64)

    def query(self, text: str) -> QueryClasses:
        """Return the query's strongest classes and their weights (none when nothing in it matched)."""
        wordnet, senses = self.wordnet_weights_of(text)
        cosines = self.cosines(text)
        described = len([t for t in tokens(text) if t not in STOP_WORDS]) >= self.params.phrase_words
        share = self.params.phrase_minilm_weight if described else self.params.minilm_weight
        dense = wordnet + share * self.minilm_weights(cosines)
        if self.params.count_words:
            dense = self.counted_weights(text, dense)
        n = self.params.top_classes or len(dense)
        top = np.argsort(-dense, kind="stable")[:n]
        head = self.head_classes(text)
        if len(head):
            top = np.union1d(top, head)
            top = top[np.argsort(-dense[top], kind="stable")]
        top = top[dense[top] > 0]
        power = self.params.phrase_score_power if described else self.params.score_power
        return QueryClasses(top, dense[top].astype(np.float32), tuple(senses), float(cosines.max(initial=0.0)),
                            dense.astype(np.float32), power)

    def score_stored(self, query: QueryClasses, stored: np.ndarray) -> np.ndarray:
        """Return each image's score as the served SQL computes it from stored class scores (N, 1000), the index's
        smoothed √p (marconi.db.image_words.images_by_classes): Σ w · stored ** query.score_power."""
        if not len(query.classes):
            return np.zeros(len(stored), dtype=np.float32)
        return (stored[:, query.classes] ** query.score_power) @ query.weights

    def score_images(self, query: QueryClasses, probs: np.ndarray) -> np.ndarray:
        """Return each image's score Σ w · p ** image_power over the query's classes, for probabilities (N, 1000)."""
        if not len(query.classes):
            return np.zeros(len(probs), dtype=np.float32)
        return (probs[:, query.classes] ** self.params.image_power) @ query.weights


def class_text_vectors(encoder, cache_dir: Path | None = None) -> np.ndarray:
    """Return the sentence vectors of every class text, (styles, 1000, dims); cached as .npy under ``cache_dir``."""
    import hashlib

    texts = [c.text(style) for style in CLASS_TEXT_STYLES for c in imagenet_classes()]
    digest = hashlib.sha256("\n".join([encoder.name, *texts]).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"class-texts-{encoder.name}-{digest}.npy" if cache_dir is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    vectors = encoder.encode_texts(texts).reshape(len(CLASS_TEXT_STYLES), -1, encoder.dims)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp.npy")
        np.save(temp, vectors)
        temp.replace(path)
    return vectors
