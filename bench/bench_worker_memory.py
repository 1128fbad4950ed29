"""Measure a served worker's memory: at start, with every model loaded, and at its peak after large uploads.

Starts one gunicorn worker as `marconi serve` runs it, against the database the `marconi` command uses (run the demo
first), then reads the worker's VmRSS and VmHWM (its peak) from /proc after: start; a photo search, a text search and
a word query (every model loaded); a 40 MP JPEG upload; a 24 MP PNG upload (the most a format without a reduced
decode may have); a 40 MP PNG (refused with 413). The photos are synthetic grain blown up, so they compress poorly
like a camera's files.

    .venv/bin/python bench/bench_worker_memory.py
"""

from __future__ import annotations

import io
import os
import platform
import sys

import numpy as np
import psutil
import requests
from PIL import Image

from marconi.config import from_env
from marconi.db import database_url
from marconi.serving import background_gunicorn


def worker_memory_mib() -> dict:
    """VmRSS and VmHWM (MiB) of the gunicorn worker (the child of the gunicorn master)."""
    for p in psutil.process_iter(["cmdline"]):
        parent = p.parent()
        if parent and "gunicorn" in " ".join(p.info["cmdline"] or []) and "gunicorn" in " ".join(parent.cmdline()):
            with open(f"/proc/{p.pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
            return {k: int(v.split()[0]) // 1024 for k, v in fields.items()}
    raise RuntimeError("no gunicorn worker found")


def photo(size: tuple[int, int], fmt: str) -> bytes:
    """A synthetic photo of ``size`` (w, h): random grain blown up 16 times, saved as ``fmt``."""
    grain = np.random.default_rng(0).integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(np.kron(grain, np.ones((16, 16, 1), np.uint8))).save(
        out, fmt, **({"compress_level": 1} if fmt == "PNG" else {"quality": 85}))
    return out.getvalue()


def main() -> None:
    """Start one worker, load it step by step, print its memory after each step."""
    small = photo((640, 480), "JPEG")
    steps = [("40 MP JPEG upload", photo((7744, 5152), "JPEG")), ("24 MP PNG upload", photo((6000, 4000), "PNG")),
             ("40 MP PNG upload (refused)", photo((7744, 5152), "PNG"))]
    env = {"MARCONI_MAX_UPLOAD_BYTES": str(200 << 20)}  # the PNGs are larger than the default 16 MiB
    with background_gunicorn(database_url(from_env()), workers=1, env=env) as base:
        print(f"{'after':<32} {'VmRSS MiB':>10} {'peak MiB':>9}  answer")
        row = worker_memory_mib()
        print(f"{'start':<32} {row['VmRSS']:>10} {row['VmHWM']:>9}")
        requests.post(base + "/api/images/search", files={"image": ("q.jpg", small)}, timeout=300)
        requests.get(base + "/api/images/search", params={"q": "dog"}, timeout=300)
        requests.get(base + "/api/words/similar", params={"q": "dog"}, timeout=300)
        row = worker_memory_mib()
        print(f"{'every model loaded':<32} {row['VmRSS']:>10} {row['VmHWM']:>9}")
        for name, data in steps:
            r = requests.post(base + "/api/images/search", files={"image": ("q", data)}, timeout=300)
            row = worker_memory_mib()
            print(f"{name:<32} {row['VmRSS']:>10} {row['VmHWM']:>9}  {r.status_code}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; command: python {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
