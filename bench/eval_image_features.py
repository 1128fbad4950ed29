"""Feature variants of EfficientNet-Lite0 for image search, under the demo's protocol (hand-run).

Each variant is chosen or rejected on photos 1-10 of each Caltech label (the two-fold validation of
``marconi.training.image_metric_choice.choose_setting``, which also picks the learned metric's setting), then
reported once on photos 11-20, each ranking the other 1,999 photos in the PCA-100 space of the learned metric, as
the served index does (same arithmetic as bench/eval_served_learned.py). Variants: input geometry (224 centre
crop, the whole photo at 256 or 288), GeM pooling (p = 3) instead of the average, a horizontal flip averaged in,
the ImageNet probabilities (√p) appended, re-ordering the top 50 by a vote of the top 10's labels, and several
views of each photo summed (the 224 crop and the whole photo: what efficientnet-lite0-2view serves).

    nice -n 10 .venv/bin/python bench/eval_image_features.py       # encodes 2,000 photos 3 ways (cached in /tmp)
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from marconi.encoders import load_encoder  # noqa: E402
from marconi.encoders.preprocess import Preprocess  # noqa: E402
from marconi.evaluation.image_metrics import nearest  # noqa: E402
from marconi.image_search.metric import LearnedMetric  # noqa: E402
from marconi.image_search.pca import PCA  # noqa: E402
from marconi.training.image_metric_choice import choose_setting, first_of_each_label  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "images" / "caltech101"
CACHE = Path("/tmp/marconi-eval-features")
# name: (input size, shorter side before a centre crop or None for the whole photo, more views of each batch)
GEOMETRIES = {"224 crop": (224, 256, ("flip",)), "256 whole": (256, None, ("flip", "centre224")),
              "288 whole": (288, None, ())}
# more views of a batch: its mirror, and its centre 224x224 (from the photo as already resized: no second decode)
VIEWS = {"flip": lambda x: x.flip(-1), "centre224": lambda x: x[:, :, 16:240, 16:240]}


def encode(name: str, size: int, resize: int | None, views: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Average and GeM-pooled head features and logits of every photo, and of each of its ``views`` (VIEWS; keys
    suffixed with the view's name), cached."""
    file = CACHE / f"lite0-{size}-{resize or 'whole'}{''.join('-' + v for v in views)}.npz"
    if file.is_file():
        return dict(np.load(file))
    torch.set_num_threads(2)
    encoder = load_encoder("efficientnet-lite0", device="cpu")
    net, head = encoder.model.net, encoder.model.classifier
    pre = Preprocess(size=size, resize=resize, mean=(127.0,) * 3, std=(128.0,) * 3)
    paths = sorted(DATA.glob("*/*.jpg"))
    out: dict[str, list] = {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(paths), 16):
            x = torch.stack([pre(Image.open(p)) for p in paths[start:start + 16]])
            for suffix, batch in (("", x), *((f"_{v}", VIEWS[v](x)) for v in views)):
                maps = net.extract_features(batch.contiguous(memory_format=torch.channels_last)).float()
                avg = maps.mean(dim=(2, 3))
                out.setdefault("avg" + suffix, []).append(avg.numpy())
                gem = maps.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)
                out.setdefault("gem3" + suffix, []).append(gem.numpy())
                out.setdefault("logits" + suffix, []).append(head(avg).numpy())
            print(f"{name}: {start + len(x)}/{len(paths)} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(file, keys=np.array([f"{p.parent.name}/{p.name}" for p in paths]), **arrays)
    return encode(name, size, resize, views)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1."""
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sqrt_probs(logits: np.ndarray) -> np.ndarray:
    """√ of the softmax of each row."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.sqrt(e / e.sum(axis=1, keepdims=True))


def served(space: np.ndarray, labels: np.ndarray, queries: np.ndarray, vote: bool = False) -> tuple[float, float]:
    """P@1, P@10 of ``queries`` ranking every other photo in ``space``'s PCA-100 (Euclidean, as the cube index);
    with ``vote``, the top 50 re-ordered so that photos of the top 10's most frequent label come first."""
    reduced = PCA.fit(space, 100).transform(space)
    ranked = labels[nearest(reduced, queries, "euclidean", 50)]
    if vote:
        for row in ranked:
            names, counts = np.unique(row[:10], return_counts=True)
            row[:] = row[np.argsort(row != names[np.argmax(counts)], kind="stable")]
    hits = ranked[:, :10] == labels[queries][:, None]
    return float(hits[:, 0].mean()), float(hits.mean())


def main() -> None:
    """Encode (or load), validate and report every variant."""
    print("$ .venv/bin/python bench/eval_image_features.py " + shlex.join(sys.argv[1:]))
    cached = {name: encode(name, *geometry) for name, geometry in GEOMETRIES.items()}
    labels = np.array([k.split("/")[0] for k in cached["224 crop"]["keys"]], dtype=object)
    fit = first_of_each_label(labels, np.ones(len(labels), dtype=bool), 10)
    queries = np.flatnonzero(~fit)
    crop = cached["224 crop"]
    variants = {f"{name}, average pooling": (z["avg"], False) for name, z in cached.items()}
    variants |= {
        "224 crop, GeM p = 3": (crop["gem3"], False),
        "224 crop, flip averaged in": (unit(crop["avg"]) + unit(crop["avg_flip"]), False),
        "224 crop, √p appended (×0.5)": (np.hstack([unit(crop["avg"]), 0.5 * sqrt_probs(crop["logits"])]), False),
        "224 crop, top-10 label vote": (crop["avg"], True),
    }
    # several views of one photo through the same network, each pooled vector at length 1, summed
    # (efficientnet-lite0-2view serves the first)
    whole, wider = cached["256 whole"], cached["288 whole"]
    mirror, centre = unit(whole["avg_flip"]), unit(whole["avg_centre224"])
    variants |= {
        "224 crop + 256 whole (two views)": (unit(crop["avg"]) + unit(whole["avg"]), False),
        "224 crop + its mirror + 2 × 256 whole": (unit(crop["avg"]) + unit(crop["avg_flip"]) + 2 * unit(whole["avg"]),
                                                  False),
        "256 whole + 288 whole": (unit(whole["avg"]) + unit(wider["avg"]), False),
        "224 crop + 256 whole + 288 whole": (unit(crop["avg"]) + unit(whole["avg"]) + unit(wider["avg"]), False),
        "256 whole + its mirror": (unit(whole["avg"]) + mirror, False),
        "256 whole + the centre 224 of the squashed photo": (unit(whole["avg"]) + centre, False),
        "256 whole + centre 224 + mirror": (unit(whole["avg"]) + centre + mirror, False),
        "224 crop + 256 whole, raw features averaged": ((crop["avg"] + whole["avg"]) / 2, False),
    }
    print("| variant | validation on photos 1-10, best setting: P@1 / P@10 | setting | photos 11-20: P@1 / P@10 |")
    print("|---|---|---|---|")
    for name, (feats, vote) in variants.items():
        feats = feats.astype(np.float32)
        choice = choose_setting(feats[fit], labels[fit])
        best = choice["validation"][0]
        if choice["blend"] is None:
            space = unit(feats)
        else:
            space = LearnedMetric.fit(feats[fit], labels[fit], choice["shrinkage"], choice["blend"]).transform(feats)
        p1, p10 = served(space, labels, queries, vote)
        print(f"| {name} | {best['P@1']:.3f} / {best['P@10']:.3f} | shrinkage {choice['shrinkage']}, blend "
              f"{choice['blend']} | {p1:.3f} / {p10:.3f} |", flush=True)


if __name__ == "__main__":
    main()
