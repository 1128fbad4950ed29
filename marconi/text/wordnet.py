"""WordNet 3.0 nouns read straight from ``data.noun``: lemmas, definitions and hypernym pointers by synset offset.

NLTK's reader wants a ``lexnames`` file that Debian's ``wordnet-base`` does not ship, and only hypernyms of a
thousand synsets are needed here, so this reads the database file directly. In WordNet, a noun synset's offset *is*
its byte position in ``data.noun``: the ImageNet id ``n02110341`` is the line that starts at byte 2110341. A line is

    02110341 05 n 03 dalmatian 0 coach_dog 0 carriage_dog 0 002 @ 02084071 n 0000 ~ 02110532 n 0000 | a large ...

offset, lexicographer file, part of speech, word count (hex), words with lex ids, pointer count, pointers
(symbol, offset, part of speech, source/target), ``|`` gloss. Hypernyms are the ``@`` (class) and ``@i`` (instance)
pointers to nouns. Format: wndb(5WN).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from marconi.errors import Unavailable

INSTALL = "apt-get install wordnet-base"
# Debian's wordnet-base, then where NLTK's downloader puts the same files.
SEARCH_DIRS = (
    Path("/usr/share/wordnet"),
    Path("/usr/share/nltk_data/corpora/wordnet"),
    Path("/usr/local/share/nltk_data/corpora/wordnet"),
    Path.home() / "nltk_data" / "corpora" / "wordnet",
)
HYPERNYM_POINTERS = ("@", "@i")
# WordNet's detachment rules for nouns (morphy): an inflected ending and what replaces it.
NOUN_SUFFIXES = (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
                 ("ies", "y"))


class WordNetUnavailable(Unavailable):
    """WordNet's noun database is not installed; the message says how to install it."""

    code = "wordnet_unavailable"


@dataclass(frozen=True)
class Synset:
    """One WordNet noun synset: its id (``n`` + 8-digit offset), lemmas (spaces, not underscores), gloss, hypernyms."""

    wnid: str
    lemmas: tuple[str, ...]
    definition: str
    hypernyms: tuple[str, ...]


def parse_line(line: str) -> Synset:
    """Return the synset of one ``data.noun`` line; ValueError when the line does not follow wndb(5WN)."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    try:
        offset, pos = fields[0], fields[2]
        n_words = int(fields[3], 16)
        words = fields[4 : 4 + 2 * n_words : 2]
        at = 4 + 2 * n_words
        n_pointers = int(fields[at])
        pointers = [fields[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(n_pointers)]
    except (IndexError, ValueError):
        raise ValueError(f"not a WordNet data line: {line[:80]!r}") from None
    if len(offset) != 8 or not offset.isdigit() or len(words) != n_words or any(len(p) != 4 for p in pointers):
        raise ValueError(f"not a WordNet data line: {line[:80]!r}")
    hypernyms = tuple(f"{p[2]}{p[1]}" for p in pointers if p[0] in HYPERNYM_POINTERS and p[2] == "n")
    lemmas = tuple(w.replace("_", " ") for w in words)
    return Synset(f"{pos}{offset}", lemmas, gloss.strip().split("; \"")[0].strip(), hypernyms)


def find_data_noun(search: tuple[Path, ...] = SEARCH_DIRS) -> Path:
    """Return the path of WordNet's ``data.noun``; raise WordNetUnavailable saying how to install it."""
    for folder in search:
        path = Path(folder) / "data.noun"
        if path.is_file():
            return path
    where = ", ".join(str(p) for p in search)
    raise WordNetUnavailable(f"WordNet 3.0 is not installed (no data.noun in {where}): {INSTALL}")


class WordNetNouns:
    """Random access to ``data.noun`` by synset id; each synset read once and kept."""

    def __init__(self, path: Path | None = None):
        """Open WordNet's noun database at ``path`` (default: the first of :data:`SEARCH_DIRS` that has one)."""
        self.path = Path(path) if path is not None else find_data_noun()
        if not self.path.is_file():
            raise WordNetUnavailable(f"WordNet noun database {self.path} not found: {INSTALL}")
        self._cache: dict[str, Synset] = {}
        self._lock = threading.Lock()
        self._index: dict[str, tuple[str, ...]] | None = None
        self._exceptions: dict[str, tuple[str, ...]] | None = None

    def _load_index(self) -> None:
        index: dict[str, tuple[str, ...]] = {}
        for line in (self.path.parent / "index.noun").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(" "):
                continue  # the licence at the top
            fields = line.split()
            try:
                n_synsets, n_pointers = int(fields[2]), int(fields[3])
            except (IndexError, ValueError):
                continue
            index[fields[0]] = tuple("n" + o for o in fields[6 + n_pointers : 6 + n_pointers + n_synsets])
        exceptions: dict[str, tuple[str, ...]] = {}
        exc_path = self.path.parent / "noun.exc"
        if exc_path.is_file():
            for line in exc_path.read_text(encoding="utf-8", errors="replace").splitlines():
                inflected, *bases = line.split()
                exceptions[inflected] = tuple(bases)
        self._index, self._exceptions = index, exceptions

    def base_forms(self, word: str) -> list[str]:
        """Return the noun lemmas ``word`` may be an inflection of, itself first when it is one (WordNet's morphy):
        "leopards" → ["leopard"], "mice" → ["mouse"], "grand pianos" → ["grand piano"]."""
        if self._index is None:
            self._load_index()
        assert self._index is not None and self._exceptions is not None
        key = "_".join(word.strip().lower().split())
        found = [key] if key in self._index else []
        found += [b for b in self._exceptions.get(key, ()) if b in self._index]
        for ending, replacement in NOUN_SUFFIXES:
            if key.endswith(ending) and len(key) > len(ending):
                base = key[: len(key) - len(ending)] + replacement
                if base in self._index and base not in found:
                    found.append(base)
        return [f.replace("_", " ") for f in dict.fromkeys(found)]

    def lookup(self, word: str) -> list[str]:
        """Return the noun synset ids of ``word`` or its base forms (most frequent sense first); [] if none."""
        out: dict[str, None] = {}
        for base in self.base_forms(word):
            for wnid in self._index["_".join(base.split())]:  # type: ignore[index]
                out.setdefault(wnid, None)
        return list(out)

    def synset(self, wnid: str) -> Synset:
        """Return the noun synset ``wnid`` (e.g. "n02110341"); KeyError when it is not in this database."""
        found = self._cache.get(wnid)
        if found is not None:
            return found
        if len(wnid) != 9 or wnid[0] != "n" or not wnid[1:].isdigit():
            raise KeyError(f"{wnid!r} is not a WordNet noun id such as 'n02110341'")
        with self._lock, self.path.open("rb") as f:
            f.seek(int(wnid[1:]))
            line = f.readline().decode("utf-8", errors="replace")
        if not line.startswith(wnid[1:] + " "):
            raise KeyError(f"{wnid} is not in {self.path} (is it WordNet 3.0?)")
        synset = parse_line(line)
        self._cache[wnid] = synset
        return synset

    def ancestors(self, wnid: str) -> list[tuple[str, int]]:
        """Return every hypernym of ``wnid`` (all paths) with its shortest distance, nearest first, without repeats."""
        depth: dict[str, int] = {}
        frontier = [wnid]
        level = 0
        while frontier:
            level += 1
            following = []
            for current in frontier:
                for parent in self.synset(current).hypernyms:
                    if parent not in depth and parent != wnid:
                        depth[parent] = level
                        following.append(parent)
            frontier = following
        return sorted(depth.items(), key=lambda item: item[1])
