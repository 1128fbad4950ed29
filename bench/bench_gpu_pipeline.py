"""The encoding pipeline end to end (hand-run): JPEG files → decode workers → encoder → COPY into PostgreSQL.

For each encoder, eager and with ``torch.compile``, this measures side by side:

- **end to end**: JPEG bytes read from files, decoded and resized in ``--workers`` processes
  (:func:`marconi.encoders.batch.encode_stream`), encoded on ``--device``, and every vector written into a
  PostgreSQL table by a writer thread with binary COPY (:func:`marconi.db.copy.copy_id_vectors`); the clock stops
  when the last batch is committed and the table holds one row per image;
- **decode only**: the same workers with no model, the ceiling the decoders put on the pipeline;
- **model only**: ``encode_batch`` on input already on the device, the ceiling the model puts on it;
- **GPU utilisation** sampled through NVML during the end-to-end run, so the bottleneck is visible;
- **match**: per-image cosine between these vectors and the CPU path's (float32, same weights) on real photos.

It runs on a CPU too (small ``--n``), which is how it is tested before an accelerator is spent on it. Figures go to
``--out`` as JSON after every step (a run cut short keeps what it measured) and to stdout as a Markdown table.

    python bench/bench_gpu_pipeline.py --make-jpegs /tmp/jpegs --n 5000 --device cuda --workers 14 \\
        --batch-size 256 --encoders efficientnet-lite0,efficientnet-lite2,vgg16-conv --compile off,on \\
        --check-photos photos/ --out gpu.json
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import multiprocessing
import os
import platform
import queue
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_encoders import model_only, sync  # noqa: E402

from marconi.db import sqlalchemy_url  # noqa: E402
from marconi.db.copy import copy_id_vectors  # noqa: E402
from marconi.encoders import load_encoder  # noqa: E402
from marconi.encoders.batch import decode_stream, encode_stream  # noqa: E402
from marconi.imageio import DEFAULT_MAX_PIXELS  # noqa: E402


def _synthetic_jpeg(args: tuple[int, int, int]) -> bytes:
    """Return one photo-like JPEG: smooth colour fields, shapes and sensor-like noise (so it compresses like a
    photo, not like a flat test card)."""
    seed, width, height = args
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height),
                                                                                  Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(base)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = [x0, y0, x0 + int(rng.integers(10, width // 2)), y0 + int(rng.integers(10, height // 2))]
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    pixels = np.asarray(base, dtype=np.int16) + rng.normal(0, 12, (height, width, 3)).astype(np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def make_jpegs(folder: Path, n: int, width: int, height: int, processes: int) -> None:
    """Write ``n`` distinct synthetic JPEGs of width x height into ``folder`` (skipped if they are there)."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) >= n:
        return
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for i, data in enumerate(pool.imap(_synthetic_jpeg, [(i, width, height) for i in range(n)], chunksize=32)):
            (folder / f"{i:06d}.jpg").write_bytes(data)


def read_files(folder: Path, n: int) -> list[tuple[int, bytes]]:
    """Return n (index, bytes) items from the JPEG files of ``folder``, cycled when there are fewer."""
    paths = sorted(folder.glob("*.jpg"))
    if not paths:
        sys.exit(f"no .jpg files in {folder}")
    blobs = [p.read_bytes() for p in paths[:n]]
    return [(i, blobs[i % len(blobs)]) for i in range(n)]


class GpuSampler(threading.Thread):
    """Samples the GPU's utilisation (NVML, through torch) every ``period`` seconds while running."""

    def __init__(self, device: torch.device, period: float = 0.1):
        super().__init__(daemon=True)
        self.device, self.period, self.samples = device, period, []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.period):
            try:
                self.samples.append(torch.cuda.utilization(self.device))
            except Exception:  # no NVML here: report nothing rather than guess
                return

    def summary(self) -> dict:
        self.stopped.set()
        self.join()
        if not self.samples:
            return {}
        return {"gpu_util_mean": round(statistics.fmean(self.samples), 1),
                "gpu_util_median": statistics.median(self.samples), "gpu_util_samples": len(self.samples)}


class CopyWriter(threading.Thread):
    """Writes (ids, vectors) batches from a queue into ``table`` with binary COPY, one commit per batch."""

    def __init__(self, engine: sa.Engine, table: str):
        super().__init__(daemon=True)
        self.engine, self.table = engine, table
        self.batches: queue.Queue = queue.Queue(maxsize=8)
        self.written, self.error = 0, None

    def run(self) -> None:
        try:
            with self.engine.connect() as conn:
                while (batch := self.batches.get()) is not None:
                    with conn.begin():
                        self.written += copy_id_vectors(conn, self.table, ("image_id", "vec"), *batch)
        except Exception as exc:  # surfaced by the caller after join()
            self.error = exc
            while self.batches.get() is not None:  # keep draining so the producer never blocks
                pass


def end_to_end(encoder, items, engine: sa.Engine, batch_size: int, workers: int, device_decode: str = "") -> dict:
    """Run files → vectors in Postgres once; return images/s, seconds, failures and GPU utilisation.

    ``device_decode`` names a device decoder (DEVICE_DECODERS) that replaces the decoding workers (a prototype).
    """
    table = "bench_gpu_vectors"
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(sa.text(f"CREATE TABLE {table} (image_id bigint NOT NULL, vec real[] NOT NULL)"))
    writer = CopyWriter(engine, table)
    sampler = GpuSampler(encoder.device) if encoder.device.type == "cuda" else None
    writer.start()
    if sampler:
        sampler.start()
    failed = 0
    start = time.perf_counter()
    try:
        if device_decode:
            batches = device_decoded_batches(device_decode, encoder, items, batch_size)
        else:
            batches = encode_stream(encoder, items, batch_size=batch_size, workers=workers, progress=False)
        for keys, feats, failures in batches:
            failed += len(failures)
            if keys:
                writer.batches.put((np.asarray(keys), feats))
    finally:
        writer.batches.put(None)
        writer.join()
    seconds = time.perf_counter() - start
    if writer.error is not None:
        raise writer.error
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
        dims = conn.execute(sa.text(f"SELECT array_length(vec, 1) FROM {table} LIMIT 1")).scalar()
    if rows != len(items) - failed or dims != encoder.dims:
        raise RuntimeError(f"{table} holds {rows} rows of {dims} dims, expected {len(items) - failed} of "
                           f"{encoder.dims}")
    result = {"images": len(items), "failed": failed, "seconds": round(seconds, 3),
              "images_per_second": round(len(items) / seconds, 1), "rows_in_postgres": rows}
    return result | (sampler.summary() if sampler else {})


@functools.lru_cache(maxsize=512)
def pillow_bilinear_weights(in_size: int, out_size: int, box0: float, box1: float, device: str) -> torch.Tensor:
    """The (out_size, in_size) matrix of Pillow's bilinear resampling of the span [box0, box1) of one axis, on
    ``device``: the support widens with the scale when shrinking (antialiasing) and may reach past the box, as
    Pillow's does. Cached: a collection's photos share a few sizes."""
    scale = (box1 - box0) / out_size
    filterscale = max(scale, 1.0)  # the triangle filter's support is 1, widened by the scale when shrinking
    center = box0 + (np.arange(out_size) + 0.5) * scale
    lo = np.maximum((center - filterscale + 0.5).astype(int), 0)
    hi = np.minimum((center + filterscale + 0.5).astype(int), in_size)
    x = np.arange(in_size)
    weights = np.clip(1.0 - np.abs((x[None, :] - center[:, None] + 0.5) / filterscale), 0.0, None)
    weights *= (x[None, :] >= lo[:, None]) & (x[None, :] < hi[:, None])
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    return torch.from_numpy(weights).to(device, torch.float32)


def crop_resize(img: torch.Tensor, preprocess) -> torch.Tensor:
    """Resize and crop one uint8 (3, H, W) image where it lies, as :meth:`Preprocess.prepare` does with Pillow
    (shorter side to ``resize`` and centre crop ``size``, or the whole image squashed; bilinear): a horizontal pass,
    rounding to 8 bits, a vertical pass. Pixels come out within 2 levels of Pillow's (float vs fixed point)."""
    size = preprocess.size
    _, height, width = img.shape
    if preprocess.resize is None:  # the whole image squashed to size x size
        box_x, box_y = (0.0, float(width)), (0.0, float(height))
    else:
        side = min(width, height) * size / preprocess.resize
        box_x, box_y = ((width - side) / 2, (width + side) / 2), ((height - side) / 2, (height + side) / 2)
    wx = pillow_bilinear_weights(width, size, *box_x, str(img.device))
    wy = pillow_bilinear_weights(height, size, *box_y, str(img.device))
    rows = wy.abs().sum(dim=0).nonzero().flatten()  # only the source rows the vertical pass reads
    first, last = int(rows[0]), int(rows[-1]) + 1
    horizontal = (img[:, first:last].float() @ wx.T).round_().clamp_(0, 255)
    return wy[:, first:last] @ horizontal


def _decode_torchvision(datas: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """nvJPEG through torchvision: (3, H, W) uint8 tensors on the device."""
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg([torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas], mode=ImageReadMode.RGB,
                       device=device)


@functools.lru_cache(maxsize=4)
def _nvimgcodec_decoder(device_index: int, backend: str):
    """One nvImageCodec decoder per device and backend ("any": its own choice, "hw": the JPEG hardware engines,
    "cuda": CUDA kernels), with libjpeg-turbo's "fancy" chroma upsampling so pixels match Pillow's."""
    from nvidia import nvimgcodec

    kinds = {"hw": nvimgcodec.BackendKind.HW_GPU_ONLY, "cuda": nvimgcodec.BackendKind.GPU_ONLY}
    backends = [nvimgcodec.Backend(kinds[backend])] if backend in kinds else None
    return nvimgcodec.Decoder(device_id=device_index, backends=backends, options=":fancy_upsampling=1")


def _decode_nvimgcodec(datas: list[bytes], device: torch.device, backend: str) -> list[torch.Tensor | None]:
    """nvImageCodec: planar RGB uint8 images on the device, as (3, H, W) tensors (None where it failed)."""
    from nvidia import nvimgcodec

    decoder = _nvimgcodec_decoder(device.index or 0, backend)
    params = nvimgcodec.DecodeParams(color_spec=nvimgcodec.ColorSpec.SRGB, sample_format=nvimgcodec.SampleFormat.P_RGB)
    images = decoder.decode([nvimgcodec.CodeStream(d) for d in datas], params=params)
    return [None if img is None else torch.from_dlpack(img) for img in images]


def _decode_pillow(datas: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """Pillow in this thread, then copied to the device: the plumbing's reference (and its CPU test)."""
    return [torch.from_numpy(np.asarray(Image.open(io.BytesIO(d)).convert("RGB")).copy()).permute(2, 0, 1)
            .to(device) for d in datas]


def _chw(img: torch.Tensor) -> torch.Tensor:
    """A decoded image as (3, H, W), whether it came planar or interleaved."""
    return img.permute(2, 0, 1) if img.shape[-1] == 3 and img.shape[0] != 3 else img


DEVICE_DECODERS = {
    "pillow": _decode_pillow,
    "nvjpeg": _decode_torchvision,
    "nvimgcodec": functools.partial(_decode_nvimgcodec, backend="any"),
    "nvimgcodec-hw": functools.partial(_decode_nvimgcodec, backend="hw"),
    "nvimgcodec-cuda": functools.partial(_decode_nvimgcodec, backend="cuda"),
}


def device_decode_prepare(decoder: str, datas: list[bytes], preprocess, device: torch.device):
    """Prototype: decode JPEGs on ``device`` with ``decoder`` (DEVICE_DECODERS), then :func:`crop_resize` them
    there. Returns (uint8 (N, 3, size, size) on the device, indices of the images that failed)."""
    decoded = DEVICE_DECODERS[decoder](datas, device)
    ok = [i for i, img in enumerate(decoded) if img is not None]
    if not ok:
        return torch.zeros((0, 3, preprocess.size, preprocess.size), dtype=torch.uint8, device=device), \
            list(range(len(datas)))
    pixels = torch.stack([crop_resize(_chw(decoded[i]), preprocess) for i in ok])
    return pixels.round_().clamp_(0, 255).to(torch.uint8), [i for i in range(len(datas)) if decoded[i] is None]


def device_decoded_batches(decoder: str, encoder, items, batch_size: int):
    """Yield (keys, features, failures) like encode_stream, decoding each batch on the device."""
    for start in range(0, len(items), batch_size):
        chunk = items[start: start + batch_size]
        pixels, failed = device_decode_prepare(decoder, [d for _, d in chunk], encoder.preprocess, encoder.device)
        keys = [k for i, (k, _) in enumerate(chunk) if i not in set(failed)]
        feats = encoder.encode_batch(pixels) if len(pixels) else np.zeros((0, encoder.dims), dtype=np.float32)
        yield keys, feats, [(chunk[i][0], "device decode failed") for i in failed]


def device_decode_only(decoder: str, preprocess, items, batch_size: int, device: torch.device) -> dict:
    """Return images/s (and failures) of a device decoder with the resize and crop, alone."""
    device_decode_prepare(decoder, [d for _, d in items[:batch_size]], preprocess, device)
    sync(device)
    failed = 0
    start = time.perf_counter()
    for i in range(0, len(items), batch_size):
        failed += len(device_decode_prepare(decoder, [d for _, d in items[i: i + batch_size]], preprocess,
                                            device)[1])
    sync(device)
    return {"images_per_second": round(len(items) / (time.perf_counter() - start), 1), "failed": failed}


def decode_only(preprocess, items, workers: int) -> float:
    """Return images/s of decoding and resizing alone, with the same workers."""
    in_flight = 2 * 256 + 32 * max(workers, 0)
    start = time.perf_counter()
    done = sum(1 for _, (arr, _) in decode_stream(items, preprocess, DEFAULT_MAX_PIXELS, workers, in_flight)
               if arr is not None)
    return done / (time.perf_counter() - start)


def encode_photos(encoder, photos: list[tuple[int, bytes]], batch_size: int) -> np.ndarray:
    """Return the vectors of ``photos`` through encode_stream (the path every image takes)."""
    return np.vstack([f for _, f, _ in encode_stream(encoder, photos, batch_size=batch_size, workers=0,
                                                     progress=False)])


def match(reference: np.ndarray, vectors: np.ndarray) -> dict:
    """Per-image cosine between two sets of L2-normalised vectors of the same photos."""
    cos = (reference * vectors).sum(axis=1)
    return {"photos": len(cos), "cosine_min": round(float(cos.min()), 6), "cosine_mean": round(float(cos.mean()), 6)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=Path, help="folder of .jpg files to encode (cycled to --n)")
    src.add_argument("--make-jpegs", type=Path, metavar="DIR", help="write --n synthetic photo-like JPEGs here first")
    p.add_argument("--jpeg-size", default="500x375", help="WxH of the synthetic JPEGs (default 500x375)")
    p.add_argument("--n", type=int, default=5000, help="images per end-to-end run (default 5000)")
    p.add_argument("--encoders", default="efficientnet-lite0,efficientnet-lite2,vgg16-conv")
    p.add_argument("--compile", default="off,on", help="off, on or off,on (default both)")
    p.add_argument("--weights", action="append", default=[], metavar="ENCODER=FILE",
                   help="weights file for an encoder (as `marconi encode images --weights`)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2), help="decoding processes")
    p.add_argument("--model-images", type=int, default=4096, help="images per timed model-only pass")
    p.add_argument("--device-decode", default="", metavar="DECODERS",
                   help="also measure decoding on the GPU (a prototype), comma-separated: nvjpeg (torchvision), "
                        "nvimgcodec, nvimgcodec-hw, nvimgcodec-cuda (nvidia-nvimgcodec)")
    p.add_argument("--check-photos", type=Path, help="folder of real photos for the CPU/GPU vector match")
    p.add_argument("--database-url", help="PostgreSQL URL (default: an embedded server under --pgdata)")
    p.add_argument("--pgdata", type=Path, default=Path("/tmp/marconi-bench-pg"))
    p.add_argument("--out", type=Path, required=True, help="JSON file for the figures (rewritten after each step)")
    return p.parse_args(argv)


def environment(args) -> dict:
    cuda = torch.cuda.is_available()
    return {
        "command": "python " + shlex.join(sys.argv), "torch": torch.__version__, "python": platform.python_version(),
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name() if cuda else None, "cuda": torch.version.cuda if cuda else None,
        "workers": args.workers, "batch_size": args.batch_size, "n": args.n,
    }


def device_e2e(result: dict) -> str:
    """The device decoders' end-to-end rates and cosines of one result, for the table."""
    cells = [f"{key.removeprefix('end_to_end_')}: {value['images_per_second']}, "
             f"{result.get(key.removeprefix('end_to_end_') + '_match', {}).get('cosine_min', '–')}"
             for key, value in result.items() if key.startswith("end_to_end_")]
    return "; ".join(cells) or "–"


def table(results: list[dict]) -> str:
    head = ("| encoder | compile | end to end img/s | GPU util % | decode only img/s | model only img/s | "
            "compile s | cosine vs CPU (min) | device decode: e2e img/s, cosine min |\n"
            "|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in results:
        e2e = r.get("end_to_end", {})
        lines.append(f"| {r['encoder']} | {'on' if r['compile'] else 'off'} | {e2e.get('images_per_second', '–')} | "
                     f"{e2e.get('gpu_util_mean', '–')} | {r.get('decode_only_images_per_second', '–')} | "
                     f"{r.get('model_only_images_per_second', '–')} | {r.get('compile_seconds', '–')} | "
                     f"{r.get('match', {}).get('cosine_min', '–')} | "
                     f"{device_e2e(r)} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    weights = dict(w.split("=", 1) for w in args.weights)
    if args.make_jpegs:
        t0 = time.perf_counter()
        width, height = (int(v) for v in args.jpeg_size.split("x"))
        make_jpegs(args.make_jpegs, args.n, width, height, processes=os.cpu_count() or 2)
        print(f"{args.n} synthetic {args.jpeg_size} JPEGs in {args.make_jpegs} ({time.perf_counter() - t0:.1f} s)")
    items = read_files(args.images or args.make_jpegs, args.n)
    photos = read_files(args.check_photos, len(list(args.check_photos.glob("*.jpg")))) if args.check_photos else []
    url = args.database_url
    if url is None:
        from marconi.db.embedded import ensure_server

        url = ensure_server(args.pgdata, dbname="bench")
    engine = sa.create_engine(sqlalchemy_url(url))
    report = {"environment": environment(args), "results": []}
    report["environment"]["mean_jpeg_bytes"] = round(statistics.fmean(len(b) for _, b in items[:1000]))

    def save() -> None:
        args.out.write_text(json.dumps(report, indent=2))

    decoders = report["decoders"] = {}
    from marconi.encoders import get_spec

    first = get_spec(args.encoders.split(",")[0].strip()).preprocess
    decoders["inline_one_thread"] = round(decode_only(first, items[:500], 0), 1)
    for w in sorted({1, max(1, args.workers // 2), args.workers}):
        decoders[f"workers_{w}"] = round(decode_only(first, items, w), 1)
    print(json.dumps({"decoders": decoders}), flush=True)
    save()
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    device_decoders = [d.strip() for d in args.device_decode.split(",") if d.strip()]
    for dec in list(device_decoders):
        try:
            decoders[f"{dec}_decode_resize"] = device_decode_only(dec, first, items, args.batch_size, device)
        except Exception as exc:
            decoders[f"{dec}_error"] = f"{type(exc).__name__}: {exc}"
            device_decoders.remove(dec)
        print(json.dumps({"decoders": decoders}), flush=True)
        save()

    modes = [m.strip() == "on" for m in args.compile.split(",")]
    names = [n.strip() for n in args.encoders.split(",")]
    reference: dict[str, np.ndarray] = {}
    for compiled in modes:  # every eager run first: a run cut short still has them
        for name in names:
            result, enc = {"encoder": name, "compile": compiled}, None
            report["results"].append(result)
            try:
                enc = load_encoder(name, device=args.device, weights_path=weights.get(name), compile=compiled,
                                   cache_dir=args.pgdata.parent / "marconi-bench-models")
                result["dtype"] = str(enc.dtype).removeprefix("torch.")
                t0 = time.perf_counter()
                warm = items[: args.batch_size]
                for _ in range(2):  # compiles (when asked) and lets cuDNN pick its kernels
                    encode_photos(enc, warm, args.batch_size)
                sync(enc.device)
                result["compile_seconds" if compiled else "warmup_seconds"] = round(time.perf_counter() - t0, 1)
                if photos:
                    if name not in reference:
                        cpu = load_encoder(name, device="cpu", dtype="float32", weights_path=weights.get(name),
                                           cache_dir=args.pgdata.parent / "marconi-bench-models")
                        reference[name] = encode_photos(cpu, photos, 32)
                        del cpu
                    result["match"] = match(reference[name], encode_photos(enc, photos, args.batch_size))
                result["end_to_end"] = end_to_end(enc, items, engine, args.batch_size, args.workers)
                save()
                result["model_only_images_per_second"] = round(model_only(enc, args.batch_size, args.model_images,
                                                                          warmup=3), 1)
                # the device decoders' resize knows one geometry; a multi-view input is packed on the CPU only
                for dec in device_decoders if not hasattr(enc.preprocess, "views") else ():
                    if photos:
                        result[f"{dec}_match"] = match(reference[name], np.vstack([
                            f for _, f, _ in device_decoded_batches(dec, enc, photos, args.batch_size)]))
                    result[f"end_to_end_{dec}"] = end_to_end(enc, items, engine, args.batch_size, args.workers,
                                                             device_decode=dec)
                    save()
                if not compiled:
                    result["decode_only_images_per_second"] = round(decode_only(enc.preprocess, items,
                                                                                args.workers), 1)
            except Exception as exc:  # one encoder failing must not lose the others' figures
                result["error"] = f"{type(exc).__name__}: {exc}"
            print(json.dumps(result), flush=True)
            save()
            del enc
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    print(table(report["results"]))
    save()


if __name__ == "__main__":
    main()
