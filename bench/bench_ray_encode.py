"""Images/s of the image encode on this machine: the local path against 1 and 2 Ray workers, side by side.

A throwaway embedded PostgreSQL holds ``--n`` Caltech-101 photos (taken from each class in turn). Each round
measures, one after the other (the machine is shared: compare figures of one run, read them with the load average
and the spread over rounds):

* ``local``: what ``marconi encode images`` does before PCA (:func:`marconi.image_search.build.encode_items` over
  the stored bytes, decoding inline), encoder already loaded, on torch's default threads (one per core) and on one
  thread (what each Ray worker uses: on a machine busy with other work, threads that wait for each other at every
  layer lose far more than they gain);
* ``ray-K``: :class:`marconi.image_search.ray_encode.RayEncoding` with K workers (one CPU each) on a Ray node of
  this machine (``ray.init(num_cpus=...)``, or ``--address`` for a running cluster), the driver writing every batch
  into ``image_encodings`` (emptied before each). Reported: the workers' start-up (processes, torch, the model),
  the encode phase (first batch sent to last batch committed) and images/s of the encode phase and of the whole.

    .venv/bin/python bench/bench_ray_encode.py --n 120 --rounds 2 --ray-workers 1 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import secrets
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
import torch

from marconi.config import from_env
from marconi.db import embedded, make_engine, migrate
from marconi.db import image_encodings as encodings_db
from marconi.db import images as images_db
from marconi.encoders import load_encoder
from marconi.image_search.build import encode_items
from marconi.image_search.ray_encode import RayEncoding, connected, import_ray
from marconi.importers.images import import_images


def photo_tree(source: Path, n: int, dest: Path) -> Path:
    """Copy ``n`` photos of ``source`` (<class>/<file>), one class after another in turn, into ``dest``."""
    classes = sorted(d for d in source.iterdir() if d.is_dir())
    files = [sorted(d.glob("*.jpg")) for d in classes]
    taken = 0
    for i in range(max(len(f) for f in files)):
        for cls, cls_files in zip(classes, files, strict=True):
            if taken == n:
                return dest
            if i < len(cls_files):
                (dest / cls.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(cls_files[i], dest / cls.name / cls_files[i].name)
                taken += 1
    return dest


def time_local(engine: sa.Engine, enc, batch_size: int, max_pixels: int, threads: int) -> dict:
    """Encode every stored image in this process on ``threads`` torch threads; return the count and the seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        with engine.connect() as conn:
            ids, *_ = encode_items(enc, images_db.stream_image_bytes(conn), batch_size, 0, False, max_pixels)
    finally:
        torch.set_num_threads(before)
    seconds = time.perf_counter() - t0
    return {"images": len(ids), "seconds": round(seconds, 2), "images_per_second": round(len(ids) / seconds, 1)}


def time_ray(ray, engine: sa.Engine, config, enc, n: int, workers: int, batch_size: int, max_pixels: int) -> dict:
    """Encode every stored image with ``workers`` Ray workers from an empty image_encodings; return the figures."""
    with engine.begin() as conn:
        encodings_db.delete(conn)
    encoding = RayEncoding(ray, config, workers=workers)
    t0 = time.perf_counter()
    ids, *_ = encoding(engine, enc, n, batch_size, 0, False, max_pixels)
    whole = time.perf_counter() - t0
    s = encoding.summary
    return {"images": len(ids), "start_seconds": s["start_seconds"], "encode_seconds": s["encode_seconds"],
            "images_per_second": s["images_per_second"], "whole_seconds": round(whole, 2),
            "whole_images_per_second": round(len(ids) / whole, 1)}


@contextlib.contextmanager
def local_cluster(address: str | None, cpus: int, root: Path):
    """Yield ``ray`` connected to ``address``, or to a Ray node started here with ``cpus`` CPUs (stopped after),
    its files under ``root`` and its token in this process's environment (nothing left in ~/.ray)."""
    if address:
        with connected(address) as ray:
            yield ray
        return
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # before Ray is imported: it reads its settings then
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    ray = import_ray()
    ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=300 * 2**20, logging_level=logging.WARNING,
             _temp_dir=str(root))
    try:
        yield ray
    finally:
        ray.shutdown()


def table(results: dict[str, list[dict]]) -> str:
    """A Markdown table of the median of each configuration over the rounds."""
    lines = ["| configuration | images/s (encode phase) | per round | workers' start-up s | images/s incl. start-up |",
             "|---|---|---|---|---|"]
    for name, rounds in results.items():
        rates = [r["images_per_second"] for r in rounds]
        start = f"{statistics.median(r['start_seconds'] for r in rounds):.1f}" if "start_seconds" in rounds[0] else "-"
        whole = statistics.median(r["whole_images_per_second"] for r in rounds) if "whole_seconds" in rounds[0] \
            else statistics.median(rates)
        lines.append(f"| {name} | {statistics.median(rates):.1f} | {', '.join(f'{r:.1f}' for r in rates)} | "
                     f"{start} | {whole:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=120, help="photos to encode")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ray-workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=16, help="images per unit of work (and per local batch)")
    ap.add_argument("--encoder", default="efficientnet-lite0")
    ap.add_argument("--address", help="a running Ray cluster (default: start a node here with --cpus CPUs)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    args = ap.parse_args()
    config = from_env().with_overrides(device="cpu")
    report = {"command": shlex.join(["python", *sys.argv]), "machine": f"{platform.machine()}, {os.cpu_count()} "
              f"cores, {platform.platform()}", "load_average_at_start": os.getloadavg(), "encoder": args.encoder,
              "batch_size": args.batch_size}
    root = Path(tempfile.mkdtemp(prefix="marconi-raybench-"))
    root.chmod(0o755)
    pgdata = root / "pgdata"
    try:
        url = embedded.ensure_server(pgdata, dbname="raybench")
        engine = make_engine(config, url=url)
        migrate.upgrade(engine)
        import_images(engine, photo_tree(config.data_dir / "images" / "caltech101", args.n, root / "photos"),
                      config, progress=False)
        with engine.connect() as conn:
            n = images_db.count_images(conn)
        enc = load_encoder(args.encoder, device="cpu", cache_dir=config.model_dir)
        report["images"] = n
        threads = torch.get_num_threads()
        results: dict[str, list[dict]] = {f"local, {threads} threads": [], "local, 1 thread": [],
                                          **{f"ray-{k}": [] for k in args.ray_workers}}
        with local_cluster(args.address, args.cpus, root / "ray") as ray:
            for r in range(args.rounds):
                for t in (threads, 1):
                    results[f"local, {t} thread{'s' if t > 1 else ''}"].append(
                        time_local(engine, enc, args.batch_size, config.max_image_pixels, t))
                for k in args.ray_workers:
                    results[f"ray-{k}"].append(time_ray(ray, engine, config, enc, n, k, args.batch_size,
                                                        config.max_image_pixels))
                print(f"round {r + 1}: " + ", ".join(f"{name} {v[-1]['images_per_second']} img/s"
                                                     for name, v in results.items()), file=sys.stderr, flush=True)
        engine.dispose()
    finally:
        embedded.stop(pgdata)
        shutil.rmtree(root, ignore_errors=True)
    report["results"] = results
    report["load_average_at_end"] = os.getloadavg()  # the machine is shared: read timings with these
    print(json.dumps(report, indent=1))
    print(f"{report['command']} ({report['machine']}; load average {report['load_average_at_start'][0]:.1f} at the "
          f"start, {report['load_average_at_end'][0]:.1f} at the end: the machine was shared)")
    print(table(results))


if __name__ == "__main__":
    main()
