"""Which text → image method to serve: an offline comparison on the shared Caltech images (no database; hand-run).

Every image is encoded once by EfficientNet-Lite0 (pooled features and ImageNet-1k class probabilities from its
classifier head, one forward pass; cached under /tmp). The 100 folder names are the queries ("Faces_easy" →
"faces easy") and folder equality is relevance; the rankers never see a folder name except as the query. Each
query ranks all 2,000 images. Metrics: mean P@10 and mAP (average precision over the whole ranking, 20 relevant).

Split: parameters (top-k, temperatures, fusion weights) are chosen on the queries of the even folder indices
(sorted folder order: 0, 2, 4, ...) and reported on the odd ones, which tuning never sees; the "tuned on" column
shows the even half for reference, "all" is both halves.

Methods: (a) keyword match of the query's words (WordNet base forms) against the names, and broader WordNet words,
of each image's top-k classes; (b)/(c) ConSE (Norouzi et al. 2014) with MiniLM vectors of "name: definition" or
"names; broader words", and with GloVe; (d) fusions, including the first draft of image_search/text_search.py;
(e) class space: Σ_c w(query, c) · p(c | image)^γ over the classes, w from MiniLM cosines and/or WordNet path
lengths (marconi.text.query, the code that serves it); (f) the same with each image's class vector averaged with
its 5 nearest images' (features), which an index can precompute. Image → tags: an image's top-5 classes (their
names and broader words), or its 5 best tags, share a word with its folder name.

Measured on 2,000 Caltech images (EfficientNet-Lite0, CPU), P@10 on the held-out odd half / all 100 queries:
keyword 0.492/0.472, ConSE MiniLM definition 0.564/0.552, keyword + ConSE 0.578/0.575, WordNet + MiniLM class
space 0.596/0.632, with neighbour smoothing 0.612/0.649.

    python bench/eval_text_methods.py
    python bench/eval_text_methods.py --device cpu --cache /tmp/marconi-eval-text
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from marconi.text.query import CLASS_TEXT_STYLES, ClassSpace, ClassSpaceParams, class_text_vectors  # noqa: E402
from marconi.text.vocabulary import imagenet_classes, tokens  # noqa: E402
from marconi.text.wordnet import WordNetNouns  # noqa: E402
from marconi.text.words import STOP_WORDS, UnknownWord, WordVectors  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "images" / "caltech101"
SMOOTHED = "(f) + each image's class vector smoothed over its nearest images (index time)"


# ------------------------------------------------------------------------------------------------------- data
def encode_images(root: Path, cache: Path, device: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Return (folder label per image, features (N, 1280), class probabilities (N, 1000)), cached in ``cache``."""
    paths = sorted(root.glob("*/*.jpg"))
    key = hashlib.sha256("\n".join(str(p.relative_to(root)) for p in paths).encode()).hexdigest()[:12]
    file = cache / f"caltech-lite0-{key}.npz"
    if file.is_file():
        saved = np.load(file)
        return [str(s) for s in saved["labels"]], saved["feats"], saved["probs"]
    from marconi.encoders import load_encoder
    from marconi.encoders.batch import encode_stream

    encoder = load_encoder("efficientnet-lite0", device=device)
    labels, feats, probs = [], [], []
    items = [(p.parent.name, p.read_bytes()) for p in paths]
    for keys, f, failures, p in encode_stream(encoder, items, batch_size=32, workers=1, progress=False,
                                               with_classes=True):
        if failures:
            raise SystemExit(f"could not decode {failures}")
        labels += keys
        feats.append(f)
        probs.append(p)
    cache.mkdir(parents=True, exist_ok=True)
    out = (labels, np.concatenate(feats), np.concatenate(probs))
    np.savez(file, labels=np.array(labels), feats=out[1], probs=out[2])
    return out


def metrics(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return per-query P@10 and average precision for scores (Q, N) and a boolean relevance matrix (Q, N)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    p10 = hits[:, :10].mean(axis=1)
    ranks = np.arange(1, hits.shape[1] + 1)
    precision = np.cumsum(hits, axis=1) / ranks
    ap = (precision * hits).sum(axis=1) / np.maximum(hits.sum(axis=1), 1)
    return p10, ap


def zscore(scores: np.ndarray) -> np.ndarray:
    """Return each query's scores standardised over the images (so methods can be added)."""
    std = scores.std(axis=1, keepdims=True)
    return (scores - scores.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1)


def stored_class_scores(probs: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Each image's class scores as the index stores them (image_classes.score): √p smoothed over its 5 nearest
    images, its top 10 classes kept, the rest 0; (N, 1000)."""
    from marconi.image_search import smoothing
    from marconi.image_search.tagging import top_classes

    classes, scores = top_classes(smoothing.smoothed(probs, smoothing.nearest(feats), np.sqrt))
    stored = np.zeros_like(probs)
    np.put_along_axis(stored, classes, scores, axis=1)
    return stored


def served_index(url: str) -> tuple[list[str], np.ndarray]:
    """(label per image, stored class scores (N, 1000)) of the serving image run of the database at ``url``: the
    index a demo home serves (its encoder, its smoothing), instead of this script's Lite0 cache."""
    import sqlalchemy as sa

    from marconi.config import Config
    from marconi.db import make_engine

    engine = make_engine(Config(), url=url)
    with engine.connect() as conn:
        labels = dict(conn.execute(sa.text(
            "SELECT id, coalesce(label, '') FROM images i "
            "WHERE EXISTS (SELECT 1 FROM image_classes c WHERE c.image_id = i.id)")).all())
        rows = conn.execute(sa.text("SELECT image_id, class_index, coalesce(score, sqrt(p)) FROM image_classes")).all()
    engine.dispose()
    ids = sorted(labels)
    row = {image_id: i for i, image_id in enumerate(ids)}
    stored = np.zeros((len(ids), 1000), dtype=np.float32)
    for image_id, c, score in rows:
        stored[row[image_id], c] = score
    return [labels[i] for i in ids], stored


def index_for(argv: list[str]) -> tuple[list[str], np.ndarray]:
    """(label per image, stored class scores (N, 1000)): the serving index of ``--database URL`` when ``argv`` has
    it (:func:`served_index`), else this script's Lite0 cache scored as the index stores it."""
    if "--database" in argv:
        return served_index(argv[argv.index("--database") + 1])
    labels, feats, probs = encode_images(DATA, Path("/tmp/marconi-eval-text"), "cpu")
    return labels, stored_class_scores(probs, feats)


def top_k(probs: np.ndarray, k: int) -> np.ndarray:
    """Return ``probs`` with all but each row's k largest entries set to 0."""
    if k >= probs.shape[1]:
        return probs
    out = np.zeros_like(probs)
    idx = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    np.put_along_axis(out, idx, np.take_along_axis(probs, idx, axis=1), axis=1)
    return out


# ------------------------------------------------------------------------------------------------- word forms
class Forms:
    """Lower-case words with their WordNet base forms ("leopards" → {"leopards", "leopard"})."""

    def __init__(self, wordnet: WordNetNouns):
        """Use ``wordnet`` for base forms."""
        self.wordnet = wordnet

    def of(self, text: str) -> set[str]:
        """Return the non-stop words of ``text`` and their base forms."""
        out = set()
        for t in tokens(text):
            if t not in STOP_WORDS:
                out |= {t, *self.wordnet.base_forms(t)}
        return out

    def query_groups(self, text: str) -> list[set[str]]:
        """Return one set of forms per non-stop query word."""
        return [{t, *self.wordnet.base_forms(t)} for t in tokens(text) if t not in STOP_WORDS]


# ---------------------------------------------------------------------------------------------------- methods
def keyword_weights(queries: list[str], class_words: list[set[str]], forms: Forms) -> np.ndarray:
    """Return w (Q, 1000): the share of a query's words found among a class's words."""
    w = np.zeros((len(queries), len(class_words)), dtype=np.float32)
    for qi, q in enumerate(queries):
        groups = forms.query_groups(q)
        for ci, words in enumerate(class_words):
            w[qi, ci] = sum(bool(g & words) for g in groups) / max(len(groups), 1)
    return w


def conse(probs: np.ndarray, class_vectors: np.ndarray, query_vectors: np.ndarray, k: int) -> np.ndarray:
    """Return ConSE scores: cosine between the query and Σ over each image's top-k classes of p · class vector."""
    images = top_k(probs, k) @ class_vectors
    images /= np.maximum(np.linalg.norm(images, axis=1, keepdims=True), 1e-12)
    return query_vectors @ images.T


# ------------------------------------------------------------------------------------------------------- tags
def tag_match(labels: list[str], probs: np.ndarray, classes, forms: Forms, served: bool) -> float:
    """Return the share of images whose top-5 tags share a word with their folder name.

    Flat: the names and broader words of the image's 5 most probable classes. Served: the 5 best tags of
    :func:`marconi.image_search.tagging.tags_for` (a word scores the summed probability of the top classes that
    carry it).
    """
    folder_words = {lab: forms.of(lab.replace("_", " ")) for lab in set(labels)}
    top = np.argsort(-probs, axis=1)[:, :10]
    if served:
        from marconi.image_search.tagging import tags_for

        tags = [[t for t, _, _ in tags_for(row, probs[i, row], classes)[:5]] for i, row in enumerate(top)]
        words = [set().union(*(forms.of(t) for t in row)) if row else set() for row in tags]
    else:
        words = [forms.of(" ".join(w for c in row[:5] for w in (*classes[c].names, *classes[c].broader)))
                 for row in top]
    return float(np.mean([bool(folder_words[lab] & w) for lab, w in zip(labels, words, strict=True)]))


def knn_smooth(values: np.ndarray, feats: np.ndarray, k: int, weight: float) -> np.ndarray:
    """Return values + weight · mean of the values of each image's k nearest neighbours (cosine of features)."""
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    neighbours = np.argpartition(-sims, k, axis=1)[:, :k]
    return values + weight * values[neighbours].mean(axis=1)


# ------------------------------------------------------------------------------------------------------- main
def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/marconi-eval-text"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    started = time.time()

    labels, feats, probs = encode_images(args.data, args.cache, args.device)
    folders = sorted(set(labels))
    queries = [f.replace("_", " ").lower() for f in folders]
    relevant = np.array([[lab == f for lab in labels] for f in folders])
    tune, report = np.arange(0, len(folders), 2), np.arange(1, len(folders), 2)

    classes = imagenet_classes()
    wordnet = WordNetNouns()
    forms = Forms(wordnet)

    from marconi.encoders import load_encoder

    minilm = load_encoder("minilm", device=args.device)
    q_minilm = minilm.encode_texts(queries)
    class_vectors = class_text_vectors(minilm, args.cache)
    texts = dict(zip(CLASS_TEXT_STYLES, class_vectors, strict=True))
    glove = WordVectors.load()

    def glove_vector(text: str) -> np.ndarray:
        try:
            return glove.query_vector(text)[0]
        except UnknownWord:
            return np.zeros(glove.dims, np.float32)

    q_glove = np.stack([glove_vector(q) for q in queries])
    c_glove = np.stack([glove_vector(c.name) for c in classes])

    # each method: {params: scores (Q, N)}; the params with the best P@10 on the tuning half are reported
    candidates: dict[str, dict[str, np.ndarray]] = {}

    def add(name: str, params: str, scores: np.ndarray) -> None:
        candidates.setdefault(name, {})[params] = scores

    def best(name: str) -> tuple[str, np.ndarray]:
        options = candidates[name]
        params = max(options, key=lambda p: metrics(options[p][tune], relevant[tune])[0].mean())
        return params, options[params]

    keyword = {}
    for depth in (0, 1, 2, 3, None):
        words = [forms.of(" ".join([*c.names, *(c.broader_words(depth) if depth != 0 else ())])) for c in classes]
        keyword[depth] = keyword_weights(queries, words, forms)
    for k in (1, 3, 5, 10, 1000):
        add("(a) keyword: class names", f"top-{k}", keyword[0] @ top_k(probs, k).T)
        for depth in (1, 2, 3, None):
            add("(a) keyword: names + broader words", f"top-{k}, depth {depth or 'all'}",
                keyword[depth] @ top_k(probs, k).T)
    for k in (1, 3, 5, 10, 20):
        add("(b) ConSE, MiniLM 'name: definition'", f"top-{k}", conse(probs, texts["definition"], q_minilm, k))
        add("(c) ConSE, MiniLM 'names; broader words'", f"top-{k}", conse(probs, texts["broader"], q_minilm, k))
        add("ConSE, GloVe class names", f"top-{k}", conse(probs, c_glove, q_glove, k))
    a = zscore(best("(a) keyword: names + broader words")[1])
    b = zscore(best("(b) ConSE, MiniLM 'name: definition'")[1])
    for weight in np.round(np.arange(0.0, 1.01, 0.1), 2):
        add("(d) keyword + ConSE definition, z-scores fused", f"{weight:.1f}·(a) + {1 - weight:.1f}·(b)",
            weight * a + (1 - weight) * b)
    # the draft in marconi/image_search/text_search.py: 0.5·clip(cos 'name: definition') + 0.5·keyword, its top 50
    # classes, images' stored top 10 classes
    draft = 0.5 * np.clip(q_minilm @ texts["definition"].T, 0, 1) + 0.5 * (keyword[None] > 0)
    add("(d) text_search.py draft: 0.5·cos(definition) + 0.5·keyword", "top-50 query classes, image top-10",
        top_k(draft, 50) @ top_k(probs, 10).T)

    # class space: Σ_c w(query, c) · p(c | image) ** power, over all classes
    space = ClassSpace(minilm, class_vectors, wordnet)
    senses = [space.senses(q) for q in queries]
    cosines = np.stack([(class_vectors @ q).mean(axis=0) for q in q_minilm])
    wn = {}
    for alpha in (1.0, 1.5, 2.0, 3.0):
        space.params = ClassSpaceParams(alpha=alpha)
        wn[alpha] = np.stack([space.wordnet_weights(s) for s in senses])
    mini = {}
    for floor, power in itertools.product((0.2, 0.3, 0.4), (1.0, 2.0, 3.0)):
        space.params = ClassSpaceParams(floor=floor, power=power)
        mini[floor, power] = space.minilm_weights(cosines)
    roots = {1.0: probs, 0.5: np.sqrt(probs)}
    for (floor, power), w in mini.items():
        for gamma, p in roots.items():
            add("(e) class space: MiniLM", f"floor {floor}, power {power:g}, p^{gamma:g}", w @ p.T)
    for alpha, w in wn.items():
        for gamma, p in roots.items():
            add("(e) class space: WordNet paths", f"alpha {alpha:g}, p^{gamma:g}", w @ p.T)
    for alpha, (floor, power), lam, gamma in itertools.product(wn, [(0.3, 2.0), (0.3, 3.0), (0.4, 2.0)],
                                                               (0.25, 0.5, 1.0), roots):
        add("(e) class space: WordNet + MiniLM (served: marconi.text.query)",
            f"alpha {alpha:g}, floor {floor}, power {power:g}, MiniLM weight {lam:g}, p^{gamma:g}",
            (wn[alpha] + lam * mini[floor, power]) @ roots[gamma].T)
    params, _ = best("(e) class space: WordNet + MiniLM (served: marconi.text.query)")
    chosen = dict(zip(("alpha", "floor", "power", "lam", "gamma"),
                      (float(t.split()[-1].lstrip("p^")) for t in params.split(", ")), strict=True))
    weights = wn[chosen["alpha"]] + chosen["lam"] * mini[chosen["floor"], chosen["power"]]
    for kq, ki in itertools.product((20, 50, 1000), (5, 10, 20)):
        add("(e) the same, sparse: query top classes × image top classes", f"query top-{kq}, image top-{ki}",
            top_k(weights, kq) @ (top_k(probs, ki) ** chosen["gamma"]).T)
    add("(e) the same as the index stores it: query top-50 × image top-10", "fixed",
        top_k(weights, 50) @ (top_k(probs, 10) ** chosen["gamma"]).T)
    for k, weight in itertools.product((5, 10, 20), (0.5, 1.0, 2.0)):
        smoothed = knn_smooth(probs ** chosen["gamma"], feats, k, weight)
        add(SMOOTHED,
            f"{k} neighbours, weight {weight:g}", weights @ smoothed.T)

    print(f"{len(labels)} images, {len(folders)} queries (folder names); parameters chosen on the {len(tune)} "
          f"even-indexed folders, reported on the {len(report)} odd-indexed ones (never used for tuning)\n")
    print("| method | chosen on the even half | P@10 odd (reported) | mAP odd (reported) | P@10 even (tuned on) | "
          "P@10 all | mAP all |")
    print("|---|---|---|---|---|---|---|")
    for name in candidates:
        params, scores = best(name)
        p10, ap = metrics(scores, relevant)
        print(f"| {name} | {params} | {p10[report].mean():.3f} | {ap[report].mean():.3f} | {p10[tune].mean():.3f} | "
              f"{p10.mean():.3f} | {ap.mean():.3f} |")
    print()
    k, weight = (float(t.split()[0]) for t in best(SMOOTHED)[0].replace("weight ", "").split(", "))
    smoothed = knn_smooth(probs, feats, int(k), weight)
    for kind, p, served in (("names and broader words of the top-5 classes", probs, False),
                            ("the same, class probabilities smoothed as in (f)", smoothed, False),
                            ("5 best tags of tagging.tags_for", probs, True)):
        print(f"image → tags ({kind}): {tag_match(labels, p, classes, forms, served):.3f} of the 2,000 images "
              "share a word with their folder name")
    print(f"\n{time.time() - started:.0f} s; command: python {shlex.join(sys.argv)}")


if __name__ == "__main__":
    main()
