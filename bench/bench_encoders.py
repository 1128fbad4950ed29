"""Image encoder throughput (hand-run): images/s for decode+resize+model and for the model alone.

"end-to-end" feeds JPEG/PNG bytes (Caltech-101 subset, cycled to --n) through encode_stream: decode, resize and
crop in --workers processes (0 = in this process), then the model. "model only" times encode_batch on random,
already-normalised input that is already on the device. Prints the command line that produced the figures.

    python bench/bench_encoders.py --encoder efficientnet-lite0 --n 256 --batch-size 16
    python bench/bench_encoders.py --encoder all --device cuda --batch-size 256 --workers 12 --compile
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from marconi.encoders import IMAGE_ENCODERS, EncoderUnavailable, load_encoder  # noqa: E402
from marconi.encoders.batch import encode_stream  # noqa: E402


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only(encoder, batch_size: int, n: int, warmup: int) -> float:
    """Return images/s of encode_batch on random device-resident input (best of 3 timed runs)."""
    size = encoder.preprocess.size
    x = torch.randn(batch_size, len(encoder.preprocess.mean), size, size, device=encoder.device)  # 3 per view
    for _ in range(warmup):
        encoder.encode_batch(x)
    sync(encoder.device)
    batches = max(1, n // batch_size)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(batches):
            encoder.encode_batch(x)
        sync(encoder.device)
        rates.append(batches * batch_size / (time.perf_counter() - start))
    return max(rates)


def end_to_end(encoder, items: list, batch_size: int, workers: int, progress: bool) -> tuple[float, int]:
    """Return (images/s, failures) for encode_stream over ``items``."""
    warm = items[: batch_size * 2]
    for _ in encode_stream(encoder, warm, batch_size=batch_size, workers=0, progress=False):
        pass
    sync(encoder.device)
    done = failed = 0
    start = time.perf_counter()
    for keys, _, bad in encode_stream(encoder, items, batch_size=batch_size, workers=workers, progress=progress):
        done += len(keys)
        failed += len(bad)
    sync(encoder.device)
    return done / (time.perf_counter() - start), failed


def load_items(data_dir: Path, n: int) -> list[tuple[int, bytes]]:
    """Return n (index, bytes) items cycling through the Caltech-101 subset."""
    root = data_dir / "images" / "caltech101"
    paths = sorted(root.glob("*/image_*.jpg"))
    if not paths:
        sys.exit(f"no images under {root}; pass --data-dir or set MARCONI_DATA_DIR")
    blobs = [p.read_bytes() for p in paths[: min(len(paths), n)]]
    return [(i, blobs[i % len(blobs)]) for i in range(n)]


def main() -> None:
    """Parse options, run the benchmark, print figures and the command line."""
    default_data = Path(os.environ.get("MARCONI_DATA_DIR", REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="all", choices=["all", *IMAGE_ENCODERS])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n", type=int, default=256, help="images per measurement")
    parser.add_argument("--workers", type=int, default=0, help="decode processes for the end-to-end run")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None, help="NHWC memory format (default: on)"
    )
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--weights", type=Path, default=None, help="weights file (only with a single --encoder)")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    names = list(IMAGE_ENCODERS) if args.encoder == "all" else [args.encoder]
    items = [] if args.skip_end_to_end else load_items(args.data_dir, args.n)
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads"
        + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )
    for name in names:
        try:
            encoder = load_encoder(
                name,
                device=args.device,
                cache_dir=args.cache_dir,
                weights_path=args.weights if len(names) == 1 else None,
                dtype=args.dtype,
                compile=args.compile,
                channels_last=args.channels_last,
            )
        except EncoderUnavailable as exc:
            print(f"{name:<19} unavailable: {exc}")
            continue
        warmup = 3 if args.compile else 1
        model_rate = model_only(encoder, args.batch_size, args.n, warmup)
        e2e = None if args.skip_end_to_end else end_to_end(encoder, items, args.batch_size, args.workers, args.progress)
        desc = encoder.describe()
        e2e_text = "skipped" if e2e is None else f"{e2e[0]:8.1f} img/s ({e2e[1]} failures)"
        print(
            f"{name:<19} device {desc['device']:<7} dtype {desc['dtype']:<8} channels_last "
            f"{str(desc['channels_last']):<5} compiled {str(desc['compiled']):<5} batch {args.batch_size:<4} | "
            f"model only {model_rate:8.1f} img/s | decode+resize+model {e2e_text}"
        )
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))


if __name__ == "__main__":
    main()
