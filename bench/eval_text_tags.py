"""Image → tags: which words to show so that an image's top-5 tags name what people call it (hand-run, no database).

An image "matches" when its top-5 tags share a word with its Caltech folder name. Images as the index stores them
(EfficientNet-Lite0 probabilities smoothed over the 5 nearest images; bench/eval_text_methods.py's cache). Variants
are chosen on the images of the 50 even-indexed folders and reported on the odd ones:

- the first definition (``tag_match@5`` of marconi eval text-images): names and the first name of each of the 3
  nearest hypernyms of the 5 strongest classes, exact words;
- the same with WordNet base forms on both sides ("Leopards" = "leopard") and with every name of the hypernyms
  (moped → "minibike, motorbike");
- the 5 best tags of tagging.tags_for by score (a word scores the summed probability of the top-5 classes that
  carry it, so broader words such as "animal" rank first), as shown until migration 0016;
- the 5 tags shown first since 0016 (tags_for's order: score / breadth ** power, breadth = how many classes the
  word covers; a class's other names last), for each power, and with broader words that are not among GloVe's n
  most frequent words shown last;
- broader words as tags of their own, scored by the summed probability of every class under them (of the top 10
  stored), for hypernyms covering at most K of the 1,000 classes, divided by (classes under it) ** power so that
  a specific word can outrank a general one.

    .venv/bin/python bench/eval_text_tags.py
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_text_methods import DATA, encode_images  # noqa: E402

from marconi.evaluation.text_images import query_of  # noqa: E402
from marconi.image_search import smoothing, tagging  # noqa: E402
from marconi.image_search.tagging import BROADER_DEPTH, tags_for, top_classes  # noqa: E402
from marconi.text.vocabulary import ancestor_matrix, imagenet_classes, tokens  # noqa: E402
from marconi.text.wordnet import WordNetNouns  # noqa: E402


def main() -> None:
    """Print one line per variant: share of images matched, all / even folders (chosen on) / odd (reported)."""
    labels, feats, probs = encode_images(DATA, Path("/tmp/marconi-eval-text"), "cpu")
    smoothed = smoothing.smoothed(probs, smoothing.nearest(feats))
    vocabulary = imagenet_classes()
    wordnet = WordNetNouns()
    folders = sorted(set(labels))
    even = np.array([folders.index(lab) % 2 == 0 for lab in labels])

    def words(phrases, base: bool) -> set[str]:
        out = {t for phrase in phrases for t in tokens(phrase)}
        return {f for w in out for f in (w, *wordnet.base_forms(w))} if base else out

    def show(name: str, hits: list[bool]) -> None:
        hits = np.array(hits)
        print(f"| {name} | {hits.mean():.3f} | {hits[even].mean():.3f} | {hits[~even].mean():.3f} |")

    print(f"{len(labels)} images; share whose top-5 tags share a word with the folder name\n")
    print("| tags | all | even folders (chosen on) | odd folders (reported) |")
    print("|---|---|---|---|")
    by_score, _ = top_classes(np.sqrt(smoothed))
    for base in (False, True):
        asked = [words([query_of(lab)], base) for lab in labels]
        for all_names in (False, True):
            class_words = [words((*v.names, *v.broader_words(BROADER_DEPTH, first_only=not all_names)), base)
                           for v in vocabulary]
            show(f"names + {'every name' if all_names else 'first name'} of the 3 nearest hypernyms, 5 strongest "
                 f"classes{', base forms' if base else ' (the first definition)' if not all_names else ''}",
                 [bool(q & set().union(*(class_words[c] for c in row[:5])))
                  for q, row in zip(asked, by_score, strict=True)])
    asked = [words([query_of(lab)], True) for lab in labels]
    top, p = top_classes(smoothed)
    for all_names in (False, True):
        tagging.BROADER_ALL_NAMES = all_names
        show(f"5 best tags of tagging.tags_for by score, "
             f"{'every name' if all_names else 'first name, base forms (served until migration 0016)'}",
             [bool(q & words([t for t, _, _ in sorted(tags_for(r, s, vocabulary), key=lambda t: -t[1])[:5]], True))
              for q, r, s in zip(asked, top, p, strict=True)])
    tagging.BROADER_ALL_NAMES = False
    served_power = tagging.SPECIFICITY_POWER
    for power in (0.0, 0.25, 0.5, 0.75, 1.0):  # the shown order since 0016: score / breadth ** power
        tagging.SPECIFICITY_POWER = power
        show(f"5 tags shown first (tags_for: score / breadth^{power:g}, other names of a class last)",
             [bool(q & words([t for t, _, _ in tags_for(r, s, vocabulary)[:5]], True))
              for q, r, s in zip(asked, top, p, strict=True)])
    tagging.SPECIFICITY_POWER = served_power
    from marconi.text.words import common_words

    for n in (50_000, 100_000, 200_000):  # broader words outside GloVe's n most frequent shown last
        served = " (**served**)" if n == tagging.COMMON_WORDS else ""
        show(f"the same (power {served_power:g}), broader words outside GloVe's {n:,} most frequent last{served}",
             [bool(q & words([t for t, _, _ in tags_for(r, s, vocabulary, common=common_words(n))[:5]], True))
              for q, r, s in zip(asked, top, p, strict=True)])
    _, hypernym_names, matrix = ancestor_matrix()
    sizes = matrix.sum(axis=1)
    stored = np.zeros_like(smoothed)
    np.put_along_axis(stored, top, p, axis=1)
    scores = np.concatenate([stored, stored @ matrix.T], axis=1)
    tag_words = [words(v.names, True) for v in vocabulary] + [words(n, True) for n in hypernym_names]
    for limit in (10, 30, 130, 400):
        for power in (0.0, 0.5):
            keep = np.concatenate([np.ones(len(vocabulary)), (sizes <= limit) / np.maximum(sizes, 1) ** power])
            best = np.argsort(-(scores * keep), axis=1)[:, :5]
            show(f"class names + broader words over ≤ {limit} classes scored Σ p / classes^{power:g}, base forms",
                 [bool(q & set().union(*(tag_words[t] for t in row))) for q, row in zip(asked, best, strict=True)])
    print(f"\ncommand: {shlex.join(sys.argv)}")


if __name__ == "__main__":
    main()
