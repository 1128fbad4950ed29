"""The demo's protocol for the learned metric, per encoder, offline (hand-run; the same arithmetic as the served path).

For each encoder, the 2,000 shared Caltech photos are encoded (cached under /tmp/marconi-eval-learned, with the
img/s of that pass). The metric is fitted on photos 1-10 of each label, with its shrinkage and blend chosen on those
photos alone (marconi.training.image_metric_choice.choose_setting, as `marconi train images --fit-per-label 10`
does); photos 11-20 are the queries, each ranking the other 1,999 photos by Euclidean distance in the PCA-100 space
of the run (what the cube index serves). `marconi eval images --queries …/caltech101` on a run trained that way asks
the same questions through HTTP-free search code and leaves photos 1-10 out.

    .venv/bin/python bench/eval_served_learned.py --encoders efficientnet-lite0 efficientnet-lite2
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from marconi.evaluation.image_metrics import nearest  # noqa: E402
from marconi.image_search.metric import LearnedMetric  # noqa: E402
from marconi.image_search.pca import PCA  # noqa: E402
from marconi.training.image_metric_choice import choose_setting, first_of_each_label  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "images" / "caltech101"
CACHE = Path("/tmp/marconi-eval-learned")


def encode(name: str, root: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Return (label per photo in sorted path order, features, img/s of the pass), cached per encoder."""
    file = CACHE / f"{name}.npz"
    if file.is_file():
        z = np.load(file)
        return np.array([k.split("/")[0] for k in z["keys"]], dtype=object), z["feats"], float(z["img_per_s"])
    from marconi.encoders import load_encoder
    from marconi.encoders.batch import encode_stream

    paths = sorted(root.glob("*/*.jpg"))
    encoder = load_encoder(name, device="cpu")
    items = [(f"{p.parent.name}/{p.name}", p.read_bytes()) for p in paths]
    keys, feats, t0 = [], [], time.perf_counter()
    for batch_keys, batch, failures in encode_stream(encoder, items, batch_size=32, workers=1, progress=False):
        if failures:
            raise SystemExit(f"could not decode {failures}")
        keys += batch_keys
        feats.append(batch)
    speed = len(keys) / (time.perf_counter() - t0)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(file, keys=np.array(keys), feats=np.concatenate(feats), img_per_s=speed)
    return encode(name, root)


def served_precision(space: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int = 10) -> tuple[float, float]:
    """P@1, P@k of ``queries`` ranking every other photo in the PCA-100 of ``space`` (Euclidean, as the index)."""
    reduced = PCA.fit(space, 100).transform(space)
    hits = labels[nearest(reduced, queries, "euclidean", k)] == labels[queries][:, None]
    return float(hits[:, 0].mean()), float(hits.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["efficientnet-lite0", "efficientnet-lite2"])
    parser.add_argument("--fit-per-label", type=int, default=10)
    args = parser.parse_args()
    print("$ .venv/bin/python bench/eval_served_learned.py " + shlex.join(sys.argv[1:]))
    print("| encoder | space | P@1 | P@10 | encode img/s (one pass, this machine) |\n|---|---|---|---|---|")
    for name in args.encoders:
        labels, feats, speed = encode(name, DATA)
        fit = first_of_each_label(labels, np.ones(len(labels), dtype=bool), args.fit_per_label)
        queries = np.flatnonzero(~fit)
        plain = feats / np.linalg.norm(feats, axis=1, keepdims=True)
        p = served_precision(plain, labels, queries)
        shown = "" if np.isnan(speed) else f"{speed:.1f}"  # a cache made elsewhere may not know it
        print(f"| {name} | encoder | {p[0]:.3f} | {p[1]:.3f} | {shown} |", flush=True)
        choice = choose_setting(feats[fit], labels[fit])
        print(f"<!-- {name} validation on photos 1-{args.fit_per_label}, best first: {choice['validation'][:4]} -->")
        if choice["blend"] is None:
            print(f"| {name} | learned: validation kept the encoder's space | | | |")
            continue
        space = LearnedMetric.fit(feats[fit], labels[fit], choice["shrinkage"], choice["blend"]).transform(feats)
        p = served_precision(space, labels, queries)
        print(f"| {name} | learned (shrinkage {choice['shrinkage']:g}, blend {choice['blend']:g}, chosen on photos "
              f"1-{args.fit_per_label}) | {p[0]:.3f} | {p[1]:.3f} | |", flush=True)


if __name__ == "__main__":
    main()
