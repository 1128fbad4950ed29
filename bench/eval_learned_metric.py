"""How much a learned metric helps, and where it hurts (hand-run; reuses bench/eval_text_methods.py's image cache).

EfficientNet-Lite0 vectors of the 2,000 shared Caltech photos. The metric (marconi.image_search.metric) is fitted on
the first 10 photos of the even-indexed classes; queries are (a) the other 10 photos of those classes, which the fit
never saw, and (b) every photo of the odd-indexed classes, which it never saw at all. Each query ranks the other
1,999 photos by cosine. Rows: the encoder's space, then the learned space alone and blended at several weights.
A second table fits every class on its first 10 photos and asks the other 10, ranked in PCA-100 as the index does.

    .venv/bin/python bench/eval_learned_metric.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_text_methods import DATA, encode_images  # noqa: E402

from marconi.evaluation.image_metrics import nearest  # noqa: E402
from marconi.image_search.metric import LearnedMetric  # noqa: E402
from marconi.image_search.pca import PCA  # noqa: E402


def precision(space: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int = 10) -> tuple[float, float]:
    hits = labels[nearest(space, queries, "cosine", k)] == labels[queries][:, None]
    return float(hits[:, 0].mean()), float(hits.mean())


def main() -> None:
    labels, feats, _ = encode_images(DATA, Path("/tmp/marconi-eval-text"), "cpu")
    labels = np.array(labels)
    classes = sorted(set(labels))
    index = np.array([classes.index(lab) for lab in labels])
    number = np.zeros(len(labels), dtype=int)
    for c in range(len(classes)):
        rows = np.flatnonzero(index == c)
        number[rows] = np.arange(len(rows))
    trained = index % 2 == 0
    fit = trained & (number < 10)
    unseen_photos, unseen_classes = np.flatnonzero(trained & (number >= 10)), np.flatnonzero(~trained)
    plain = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    print("| space | unseen photos of fitted classes P@1 / P@10 | classes left out of the fit P@1 / P@10 |")
    print("|---|---|---|")
    rows = [("encoder (cosine)", plain)]
    for shrinkage in (0.1, 0.3, 0.6):
        for blend in (100.0, 1.0, 0.5):
            metric = LearnedMetric.fit(feats[fit], labels[fit], shrinkage=shrinkage, blend=blend)
            name = "learned alone" if blend == 100.0 else f"blend {blend:g}"
            rows.append((f"shrinkage {shrinkage:g}, {name}", metric.transform(feats)))
    for name, space in rows:
        a, b = precision(space, labels, unseen_photos), precision(space, labels, unseen_classes)
        print(f"| {name} | {a[0]:.3f} / {a[1]:.3f} | {b[0]:.3f} / {b[1]:.3f} |")
    # every class fitted on its first 10 photos; the other 10 are the queries, ranked in PCA-100 as served
    fit_all, queries = number < 10, np.flatnonzero(number >= 10)
    print("\n| every class fitted on photos 1-10; queries 11-20, PCA-100 as served | P@1 / P@10 |\n|---|---|")
    a = precision(PCA.fit(plain, 100).transform(plain), labels, queries)
    print(f"| encoder | {a[0]:.3f} / {a[1]:.3f} |")
    for blend in (0.5, 1.0, 2.0):
        space = LearnedMetric.fit(feats[fit_all], labels[fit_all], blend=blend).transform(feats)
        a = precision(PCA.fit(space, 100).transform(space), labels, queries)
        print(f"| blend {blend:g} | {a[0]:.3f} / {a[1]:.3f} |")


if __name__ == "__main__":
    main()
