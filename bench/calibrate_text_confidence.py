"""Fit the text-search confidence: P(the best image matches the words), on held-apart Caltech queries.

The feature of an answer (the served scoring, marconi.text.query): the best image's score over the query's largest
class weight. Its margin over the 10th image was also tried: it adds 0.004 AUC here but depends on how many photos
of a kind the collection holds, so a small collection got low confidences for good answers.

Right: the best image lies in the queried folder. Wrong: it does not, and every query for an ImageNet class the
collection lacks (class names sharing no word with any Caltech folder). The logistic is fitted on the even-indexed
folders and half of the absent classes, its AUC reported on the other half next to the raw score's. The printed
weights go into marconi/image_search/text_search.py.

    .venv/bin/python bench/calibrate_text_confidence.py      # reuses bench/eval_text_methods.py's image cache
    .venv/bin/python bench/calibrate_text_confidence.py --database URL   # a demo home's serving index instead
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_text_methods import index_for  # noqa: E402

from marconi.config import Config  # noqa: E402
from marconi.encoders import load_encoder  # noqa: E402
from marconi.image_search.calibration import Calibration, auc  # noqa: E402
from marconi.text.query import ClassSpace, class_text_vectors  # noqa: E402
from marconi.text.vocabulary import imagenet_classes, tokens  # noqa: E402


def features(space: ClassSpace, roots: np.ndarray, query: str) -> tuple[np.ndarray, int]:
    """([best score / largest weight], index of the best image)."""
    q = space.query(query)
    if not q.known:
        return np.zeros(1), -1
    scores = space.score_stored(q, roots)
    best = int(np.argmax(scores))
    return np.array([scores[best] / float(q.weights.max())]), best


def main() -> None:
    """Fit on one half, report on the other, print the weights."""
    # as the index stores them: each image's top 10 classes by √p smoothed over its 5 nearest images
    labels, roots = index_for(sys.argv)
    labels = np.array(labels)
    folders = sorted(set(labels.tolist()))
    folder_words = {t for f in folders for t in tokens(f.replace("_", " "))}
    absent = [c.name for c in imagenet_classes() if not set(tokens(" ".join(c.names))) & folder_words]
    absent = [absent[i] for i in np.random.default_rng(0).choice(len(absent), 100, replace=False)]
    encoder = load_encoder("minilm", device="cpu", cache_dir=Config().model_dir)
    space = ClassSpace(encoder, class_text_vectors(encoder, Config().model_dir))
    rows = []  # (features, right, half)
    for i, folder in enumerate(folders):
        x, best = features(space, roots, folder.replace("_", " ").lower())
        rows.append((x, best >= 0 and labels[best] == folder, i % 2))
    for i, name in enumerate(absent):
        rows.append((features(space, roots, name.lower())[0], False, i % 2))
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows], dtype=float)
    half = np.array([r[2] for r in rows])
    fit, test = half == 0, half == 1
    cal = Calibration.fit(x[fit], y[fit])
    conf = np.array([cal(f) for f in x])
    print(f"queries: {len(folders)} Caltech folders (right when the best image is in the folder) + {len(absent)} "
          f"ImageNet classes the collection lacks (always wrong); fitted on half {int(fit.sum())}, "
          f"reported on the other {int(test.sum())}")
    print(f"AUC on the held-out half: raw score {auc(x[test, 0], y[test] > 0):.3f}, "
          f"calibrated {auc(conf[test], y[test] > 0):.3f}")
    print(f"mean confidence held out: right {conf[test][y[test] > 0].mean():.3f}, "
          f"wrong {conf[test][y[test] == 0].mean():.3f}; share right {y[test].mean():.3f}")
    print(f"weights {np.round(cal.weights, 4).tolist()}, bias {cal.bias:.4f}")


if __name__ == "__main__":
    main()
