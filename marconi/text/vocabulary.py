"""The 1,000 ImageNet-1k classes in the classifier's output order, with readable names, definitions and broader words.

Names and definitions come from the class files in the ``timm`` wheel (``timm/data/_info/``: ``imagenet_synsets.txt``
gives the order, ``imagenet_synset_to_lemma.txt`` and ``imagenet_synset_to_definition.txt`` the words); the package
is located with :mod:`importlib.metadata` and never imported. Broader words are WordNet 3.0 hypernyms
(:mod:`marconi.text.wordnet`): dalmatian → dog, canine, domestic animal, carnivore, animal, mammal, ...

Hypernyms that say nothing a person would search for are left out (:data:`ABSTRACT`). Measured over the 1,000
classes: the seven that cover more than 40% of them (entity 100%, physical entity 99.7%, object 95.8%, whole
94.9%, artifact 52.2%, organism and living thing 41.0%; the next, animal at 39.8%, is a real query word), plus the
upper-level bookkeeping categories below them (instrumentality, matter, substance, solid, commodity, ...).

    classes = imagenet_classes()               # cached per process
    classes[0].names                           # ('tench', 'Tinca tinca')
    classes[251].broader[:4]                   # ('dog', 'domestic dog', 'Canis familiaris', 'canine')
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marconi.errors import Unavailable
from marconi.packaged import packaged_file
from marconi.text.wordnet import WordNetNouns

TIMM_PIP = "pip install --no-deps timm==1.0.31"
INFO_DIR = "timm/data/_info"
CLASS_COUNT = 1000
BROADER_TEXT_DEPTH = 4  # hypernyms named in a class's "broader" text

ABSTRACT = frozenset({
    # covering more than 40% of the classes
    "n00001740",  # entity
    "n00001930",  # physical entity
    "n00002684",  # object, physical object
    "n00003553",  # whole, unit
    "n00021939",  # artifact, artefact
    "n00004475",  # organism, being
    "n00004258",  # living thing, animate thing
    # upper-level bookkeeping categories
    "n03575240",  # instrumentality, instrumentation
    "n00020827",  # matter
    "n00020090",  # substance (matter)
    "n00019613",  # substance (material)
    "n15046900",  # solid
    "n00019128",  # natural object
    "n00002137",  # abstraction, abstract entity
    "n00007347",  # causal agent
    "n00031921",  # relation
    "n00022903",  # article
    "n03076708",  # commodity, trade good, good
    "n03093574",  # consumer goods
    "n03257877",  # durables, durable goods
    "n13809207",  # part, portion, component part
    "n03892891",  # part, portion (artifact)
    "n03932203",  # piece
    "n00033020",  # communication
    "n00024264",  # attribute
    "n00027807",  # shape, form
    "n00027167",  # location
})


class ClassFilesUnavailable(Unavailable):
    """The ImageNet class files (from the timm wheel) are not installed; the message says how to get them."""

    code = "class_files_unavailable"


@dataclass(frozen=True)
class Hypernym:
    """A broader WordNet synset above a class: its id, its lemmas, and how many steps up it is (1 = direct)."""

    wnid: str
    names: tuple[str, ...]
    depth: int


@dataclass(frozen=True)
class ImageNetClass:
    """One ImageNet-1k class: classifier index, WordNet id, names, definition and its hypernyms, nearest first.

    Abstract hypernyms (:data:`ABSTRACT`) are left out; every path up the WordNet tree is followed, each synset once.
    """

    index: int
    wnid: str
    names: tuple[str, ...]
    definition: str
    hypernyms: tuple[Hypernym, ...]

    @property
    def name(self) -> str:
        """Return the class's first (most common) name."""
        return self.names[0]

    @property
    def ancestors(self) -> tuple[str, ...]:
        """Return the WordNet ids of the kept hypernyms, nearest first."""
        return tuple(h.wnid for h in self.hypernyms)

    def broader_words(self, max_depth: int | None = None, first_only: bool = False) -> tuple[str, ...]:
        """Return the hypernyms' names up to ``max_depth`` steps (all if None), nearest first, without repeats or
        the class's own names; ``first_only`` keeps one name per hypernym."""
        own = {n.lower() for n in self.names}
        seen: dict[str, None] = {}
        for h in self.hypernyms:
            if max_depth is not None and h.depth > max_depth:
                break
            for word in h.names[:1] if first_only else h.names:
                if word.lower() not in own:
                    seen.setdefault(word, None)
        return tuple(seen)

    @property
    def broader(self) -> tuple[str, ...]:
        """Return every broader word, nearest first (dalmatian → dog, domestic dog, Canis familiaris, canine, ...)."""
        return self.broader_words()

    def words(self, max_depth: int | None = None) -> frozenset[str]:
        """Return the lower-case single words of the names and of broader words up to ``max_depth`` (all if None)."""
        phrases = [*self.names, *self.broader_words(max_depth)]
        return frozenset(t for p in phrases for t in tokens(p))

    def text(self, style: str = "definition") -> str:
        """Return the class as one text to embed: "definition" → "name: definition"; "broader" → "names; broader"."""
        if style == "definition":
            return f"{self.name}: {self.definition}"
        if style == "broader":
            return "; ".join([", ".join(self.names), *self.broader_words(BROADER_TEXT_DEPTH, first_only=True)])
        if style == "names":
            return ", ".join(self.names)
        raise ValueError(f"unknown text style {style!r}: use 'definition', 'broader' or 'names'")


def tokens(text: str) -> list[str]:
    """Return the lower-case words of ``text`` (letters and digits; "T-shirt" → ["t", "shirt"])."""
    return re.findall(r"[a-z0-9]+", text.lower())


def info_file(name: str) -> Path:
    """Return the path of one of timm's ImageNet info files; raise ClassFilesUnavailable when timm is missing."""
    return packaged_file("timm", f"{INFO_DIR}/{name}", TIMM_PIP, ClassFilesUnavailable, "the ImageNet class names")


def _tab_file(name: str) -> dict[str, str]:
    out = {}
    for line in info_file(name).read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _hypernyms(wordnet: WordNetNouns, wnid: str) -> tuple[Hypernym, ...]:
    return tuple(Hypernym(a, wordnet.synset(a).lemmas, depth) for a, depth in wordnet.ancestors(wnid)
                 if a not in ABSTRACT)


@functools.cache
def imagenet_classes(wordnet_path: Path | None = None) -> tuple[ImageNetClass, ...]:
    """Return the 1,000 ImageNet-1k classes in classifier order (cached per process).

    Raises ClassFilesUnavailable without the timm wheel and WordNetUnavailable without WordNet's noun database.
    """
    wnids = info_file("imagenet_synsets.txt").read_text(encoding="utf-8").split()
    if len(wnids) != CLASS_COUNT:
        raise ClassFilesUnavailable(f"expected {CLASS_COUNT} ImageNet classes, found {len(wnids)}: {TIMM_PIP}")
    lemmas = _tab_file("imagenet_synset_to_lemma.txt")
    definitions = _tab_file("imagenet_synset_to_definition.txt")
    wordnet = WordNetNouns(wordnet_path)
    classes = []
    for index, wnid in enumerate(wnids):
        names = tuple(n.strip() for n in lemmas[wnid].split(",") if n.strip())
        classes.append(ImageNetClass(index, wnid, names, definitions[wnid], _hypernyms(wordnet, wnid)))
    return tuple(classes)


def class_texts(style: str = "definition") -> list[str]:
    """Return one text per class, in classifier order (see :meth:`ImageNetClass.text` for the styles)."""
    return [c.text(style) for c in imagenet_classes()]


@functools.cache
def ancestor_matrix() -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], np.ndarray]:
    """Return (wnids, names, M) for every kept hypernym: M[h, c] = 1 when hypernym h is above class c.

    ``probs @ M.T`` turns class probabilities (N, 1000) into probabilities of the broader words (a dog of any
    breed counts for "dog"); useful for tags.
    """
    classes = imagenet_classes()
    wnids = sorted({a for c in classes for a in c.ancestors})
    row = {w: i for i, w in enumerate(wnids)}
    matrix = np.zeros((len(wnids), len(classes)), dtype=np.float32)
    for c in classes:
        for a in c.ancestors:
            matrix[row[a], c.index] = 1.0
    names = {h.wnid: h.names for c in classes for h in c.hypernyms}
    return tuple(wnids), tuple(names[w] for w in wnids), matrix
