"""Retrieval quality of the image encoders on the Caltech-101 subset (hand-run; prints its command line).

Split: for each of the 100 classes, image_0001-0010 form the index and image_0011-0020 are the queries.
Metrics: P@1 and P@10 = fraction of the k nearest index images (cosine) with the query's label, averaged over
queries; with the full features and after PCA to 100-d fitted on the index (centred, rows re-normalised;
"pca100w" also whitens). "loo20" is leave-one-out over all 20 images per class (index = the other 1,999).
Throughput is decode + resize + model over the whole pass.

Pooling variants come from one pass: the last feature map (vgg16-conv: conv5_3 after ReLU; efficientnet-lite0:
the 1280-channel head) pooled by average / max / GeM (p=3); for VGG also pool5 (after the last max pool) averaged.
Both geometries are measured: "crop" (shorter side 256, centre crop 224) and "squash" (whole image resized to
224x224).

    python bench/eval_encoders_caltech.py                       # all available encoders, both geometries
    python bench/eval_encoders_caltech.py --encoders efficientnet-lite0 --geometry crop
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from marconi.encoders import IMAGE_ENCODERS, Encoder, EncoderUnavailable, load_encoder  # noqa: E402
from marconi.encoders.batch import encode_stream  # noqa: E402
from marconi.encoders.efficientnet import PooledEfficientNet  # noqa: E402
from marconi.encoders.vgg16 import VGG16ConvPooled, global_pool  # noqa: E402

VGG_VARIANTS = ("conv5_3-avg", "conv5_3-max", "conv5_3-gem", "pool5-avg")
LITE_VARIANTS = ("head-avg", "head-max", "head-gem")


class LiteTrunk(nn.Module):
    """EfficientNet up to its 1280-channel head feature map."""

    def __init__(self, net: nn.Module):
        """Wrap an efficientnet_lite_pytorch EfficientNet."""
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (N, 1280, 7, 7) head feature map."""
        return self.net.extract_features(x)


class VariantHead(nn.Module):
    """Run a trunk once and return several pooled variants side by side, each L2-normalised."""

    def __init__(self, trunk: nn.Module, with_pool5: bool):
        """``with_pool5`` adds average pooling after one more 2x2 max pool (VGG's pool5)."""
        super().__init__()
        self.trunk = trunk
        self.with_pool5 = with_pool5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (N, k * C): avg, max, GeM(p=3) [, pool5 avg]."""
        fmap = self.trunk(x)
        parts = [global_pool(fmap, p) for p in ("avg", "max", "gem")]
        if self.with_pool5:
            parts.append(global_pool(F.max_pool2d(fmap, 2, 2), "avg"))
        return torch.cat([p / p.norm(dim=1, keepdim=True).clamp(min=1e-12) for p in parts], dim=1)


def caltech_items(root: Path) -> tuple[list[tuple[tuple[str, int], bytes]], list[str]]:
    """Return ((class, n), bytes) items for image_0001-0020 of each class, and the class list."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    items = []
    for cls in classes:
        for n in range(1, 21):
            path = root / cls / f"image_{n:04d}.jpg"
            if path.is_file():
                items.append(((cls, n), path.read_bytes()))
    return items, classes


def l2n(x: np.ndarray) -> np.ndarray:
    """Return rows scaled to unit length."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pca(fit: np.ndarray, dims: int, whiten: bool = False):
    """Return a function projecting rows onto the top ``dims`` principal axes of ``fit`` (then L2-normalised)."""
    mean = fit.mean(axis=0)
    _, s, vt = np.linalg.svd(fit - mean, full_matrices=False)
    comps = vt[:dims]
    scale = (s[:dims] / np.sqrt(len(fit) - 1)) if whiten else np.ones(dims)

    def project(x: np.ndarray) -> np.ndarray:
        return l2n(((x - mean) @ comps.T) / np.maximum(scale, 1e-12))

    return project


def precision(
    index: np.ndarray,
    index_labels: np.ndarray,
    queries: np.ndarray,
    query_labels: np.ndarray,
    exclude_self: bool = False,
) -> tuple[float, float]:
    """Return (P@1, P@10) of cosine nearest neighbours."""
    sims = l2n(queries) @ l2n(index).T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :10]
    hits = index_labels[top] == query_labels[:, None]
    return float(hits[:, 0].mean()), float(hits.mean())


def evaluate(feats: np.ndarray, labels: np.ndarray, nums: np.ndarray, pca_dims: int) -> dict:
    """Return metrics for one feature matrix."""
    is_index = nums <= 10
    xi, yi, xq, yq = feats[is_index], labels[is_index], feats[~is_index], labels[~is_index]
    out = {"full": precision(xi, yi, xq, yq)}
    proj = pca(xi, pca_dims)
    out[f"pca{pca_dims}"] = precision(proj(xi), yi, proj(xq), yq)
    projw = pca(xi, pca_dims, whiten=True)
    out[f"pca{pca_dims}w"] = precision(projw(xi), yi, projw(xq), yq)
    out["loo20"] = precision(feats, labels, feats, labels, exclude_self=True)
    return out


def run(name: str, geometry: str, items, args) -> list[dict]:
    """Encode all items with one encoder/geometry and return one result row per variant."""
    encoder = load_encoder(name, device=args.device, cache_dir=args.cache_dir, dtype=args.dtype)
    crop_resize = round(encoder.preprocess.size * 256 / 224)  # the 0.875 crop ratio, 256 for a 224 input
    pre = dataclasses.replace(encoder.preprocess, resize={"crop": crop_resize, "squash": None}[geometry])
    variants: tuple[str, ...] = ("default",)
    model = encoder.model
    if isinstance(model, VGG16ConvPooled):
        model, variants = VariantHead(model.features, with_pool5=True), VGG_VARIANTS
    elif isinstance(model, PooledEfficientNet):
        model, variants = VariantHead(LiteTrunk(model.net), with_pool5=False), LITE_VARIANTS
    spec = dataclasses.replace(encoder.spec, dims=encoder.dims * len(variants), preprocess=pre)
    encoder = Encoder(
        spec, model, encoder.device, encoder.dtype, encoder.weights_source, channels_last=encoder.channels_last
    )
    width = spec.dims // len(variants)
    keys, rows, failures = [], [], []
    start = time.perf_counter()
    for batch_keys, feats, bad in encode_stream(
        encoder, items, batch_size=args.batch_size, workers=args.workers, progress=not args.quiet
    ):
        keys += batch_keys
        rows.append(feats)
        failures += bad
    seconds = time.perf_counter() - start
    feats = np.concatenate(rows)
    labels = np.array([k[0] for k in keys])
    nums = np.array([k[1] for k in keys])
    results = []
    for i, variant in enumerate(variants):
        part = feats[:, i * width : (i + 1) * width]
        metrics = evaluate(part, labels, nums, args.pca)
        results.append(
            {
                "encoder": name,
                "variant": variant,
                "geometry": geometry,
                "dims": part.shape[1],
                "images": len(keys),
                "failures": len(failures),
                "img_per_s": len(keys) / seconds,
                "metrics": metrics,
            }
        )
        print(format_row(results[-1]), flush=True)
    return results


def format_row(r: dict) -> str:
    """Return one table line."""
    cells = " | ".join(f"{k} {v[0]:.3f}/{v[1]:.3f}" for k, v in r["metrics"].items())
    return (
        f"{r['encoder']:<19} {r['variant']:<12} {r['geometry']:<6} {r['dims']:>4}d | {cells} | "
        f"{r['img_per_s']:.1f} img/s"
    )


def main() -> None:
    """Parse options, evaluate, print the table and the command line."""
    default_data = Path(os.environ.get("MARCONI_DATA_DIR", REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=list(IMAGE_ENCODERS))
    parser.add_argument("--geometry", choices=("crop", "squash", "both"), default="both")
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--pca", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()

    root = args.data_dir / "images" / "caltech101"
    if not root.is_dir():
        sys.exit(f"no Caltech-101 subset at {root} (set --data-dir or MARCONI_DATA_DIR)")
    items, classes = caltech_items(root)
    print(
        f"{len(items)} images, {len(classes)} classes; index = image_0001-0010, queries = image_0011-0020; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print("columns: P@1/P@10 for full features, PCA, whitened PCA (fitted on the index), leave-one-out over 20/class")
    results = []
    geometries = ("crop", "squash") if args.geometry == "both" else (args.geometry,)
    for name in args.encoders:
        for geometry in geometries:
            try:
                results += run(name, geometry, items, args)
            except EncoderUnavailable as exc:
                print(f"{name:<19} unavailable: {exc}")
                break
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
