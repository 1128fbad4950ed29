"""Batch encoding as read → map → write: decode in worker processes, encode on the device, yield in input order.

Decoding and resizing are pure CPU work done by the encoder's picklable :class:`Preprocess` in a small pool of
worker processes (:class:`DecodePool`, which survives a crashing decoder); they hand back uint8 pixels (4x less to
copy than float32). The mapper, :meth:`Encoder.encode_batch`, is the only step that touches the device, and runs in
the caller's process. The caller reads the input and writes the output (e.g. to Postgres).
"""

from __future__ import annotations

import collections
import functools
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import torch

from marconi.encoders.base import Encoder, pool_frames
from marconi.encoders.preprocess import Preprocess
from marconi.imageio import DEFAULT_MAX_PIXELS, ImageError, load_image, sample_frames


def _is_animated(data: bytes) -> bool:
    """True for GIF, WebP and PNG files that may hold several frames (checked from their first bytes)."""
    return data[:6] in (b"GIF87a", b"GIF89a") or (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or \
        data[:8] == b"\x89PNG\r\n\x1a\n"


def _decode_prepare(data: bytes, transform: Preprocess, max_pixels: int) -> tuple[np.ndarray | None, str | None]:
    """Return (uint8 pixels, None) or (None, reason) for one image; never raises (runs in worker processes).

    The pixels are (frames, 3, size, size): one frame for a still image, up to MAX_FRAMES evenly spaced frames for
    an animated one (their features are averaged).
    """
    try:
        if _is_animated(data):
            frames = sample_frames(data, max_pixels=max_pixels)
        else:
            frames = [load_image(data, max_pixels=max_pixels, draft_size=transform.draft_size)]
        return np.stack([transform.prepare(f) for f in frames]), None
    except ImageError as exc:
        return None, f"{exc.code}: {exc}"
    except Exception as exc:  # one bad image must not stop an import
        return None, f"error: {type(exc).__name__}: {exc}"


Decoded = tuple[np.ndarray | None, str | None]


def _decode_chunk(chunk: list[bytes], transform: Preprocess, max_pixels: int) -> list[Decoded]:
    """Decode a list of images in one worker round trip."""
    return [_decode_prepare(data, transform, max_pixels) for data in chunk]


def _chunks(items: Iterable[tuple[Any, bytes]], size: int) -> Iterator[tuple[list[Any], list[bytes]]]:
    """Yield (keys, datas) lists of up to ``size`` items."""
    keys: list[Any] = []
    datas: list[bytes] = []
    for key, data in items:
        keys.append(key)
        datas.append(data)
        if len(keys) == size:
            yield keys, datas
            keys, datas = [], []
    if keys:
        yield keys, datas


class DecodePool:
    """Worker processes for decoding; survives a worker crash (e.g. a decoder segfault on a hostile file)."""

    def __init__(self, workers: int, job: Callable[[list[bytes]], list[Decoded]]):
        """Start ``workers`` processes that run ``job`` on lists of image bytes."""
        self.workers, self.job = workers, job
        self.executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(method))

    def submit(self, datas: list[bytes]) -> Future:
        """Queue one chunk."""
        return self.executor.submit(self.job, datas)

    def restart(self) -> None:
        """Replace a broken pool."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._start()

    def isolated(self, data: bytes) -> Decoded:
        """Decode one image alone, so that a crash is blamed on that image only."""
        try:
            return self.submit([data]).result()[0]
        except BrokenProcessPool:
            self.restart()
            return None, "error: the image decoder crashed on this file"

    def close(self) -> None:
        """Stop the workers without waiting for queued work."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def decode_stream(
    items: Iterable[tuple[Any, bytes]], transform: Preprocess, max_pixels: int, workers: int, in_flight: int
) -> Iterator[tuple[Any, Decoded]]:
    """Yield (key, (pixels, reason)) in input order, decoding in ``workers`` processes when workers > 0.

    The input is read in this (the caller's) thread, a few chunks ahead of the results, so memory stays bounded
    for any length of input and a database cursor is never touched from another thread. If a worker dies, the
    pool is restarted and the images of the affected chunk are retried one by one.
    """
    if workers <= 0:
        for key, data in items:
            yield key, _decode_prepare(data, transform, max_pixels)
        return
    chunk_size = max(1, min(16, in_flight // (4 * workers)))
    max_chunks = max(2 * workers, in_flight // chunk_size)
    pool = DecodePool(workers, functools.partial(_decode_chunk, transform=transform, max_pixels=max_pixels))
    window: collections.deque[list] = collections.deque()

    def oldest() -> Iterator[tuple[Any, Decoded]]:
        keys, datas, future = window.popleft()
        try:
            results = future.result()
        except BrokenProcessPool:
            pool.restart()
            results = [pool.isolated(data) for data in datas]
            for entry in window:  # chunks queued on the dead pool are sent again (finished ones are kept)
                done = entry[2].done() and not entry[2].cancelled() and entry[2].exception() is None
                if not done:
                    entry[2] = pool.submit(entry[1])
        yield from zip(keys, results, strict=True)

    try:
        for keys, datas in _chunks(items, chunk_size):
            window.append([keys, datas, pool.submit(datas)])
            while len(window) >= max_chunks:
                yield from oldest()
        while window:
            yield from oldest()
    finally:
        pool.close()


class _PinnedStaging:
    """One page-locked host buffer, reused for every batch: pinning memory per batch costs more than the copy.

    Safe to reuse because :meth:`Encoder.encode_batch` returns only after the device has read the batch (it waits
    for the features to come back).
    """

    def __init__(self):
        self.buffer: torch.Tensor | None = None

    def gather(self, pixels: list[np.ndarray]) -> torch.Tensor:
        """Concatenate ``pixels`` (uint8 arrays of one frame shape) into the pinned buffer; return that view."""
        rows = sum(len(p) for p in pixels)
        shape = pixels[0].shape[1:]
        if self.buffer is None or self.buffer.shape[1:] != shape or len(self.buffer) < rows:
            self.buffer = torch.empty((rows, *shape), dtype=torch.uint8).pin_memory()
        view = self.buffer[:rows]
        np.concatenate(pixels, out=view.numpy())
        return view


def encode_stream(
    encoder: Encoder,
    items: Iterable[tuple[Any, bytes]],
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    with_classes: bool = False,
) -> Iterator[tuple]:
    """Yield (keys, features, failures) per batch for (key, image bytes) items, in input order.

    ``features`` is (len(keys), dims) float32 with L2-normalised rows; ``failures`` lists (key, reason) for
    images that could not be decoded ("code: message", codes as in :class:`ImageError`) — one bad image never
    raises. With ``with_classes`` each batch is (keys, features, failures, class probabilities). Decoding and
    resizing run in ``workers`` processes when workers > 0. A progress bar (log lines off a terminal) shows img/s.
    """
    from marconi.progress import progress as progress_bar

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    pin = encoder.device.type == "cuda"
    in_flight = 2 * batch_size + 32 * max(workers, 0)
    bar = progress_bar(total=total, unit="img", desc=f"encode {encoder.name}", enabled=progress, smoothing=0.05)
    stream = decode_stream(items, encoder.preprocess, max_pixels, workers, in_flight)
    keys: list[Any] = []
    pixels: list[np.ndarray] = []
    failures: list[tuple[Any, str]] = []

    staging = _PinnedStaging() if pin else None

    def flush() -> tuple:
        if not pixels:
            empty = np.zeros((0, encoder.dims), dtype=np.float32)
            return (empty, np.zeros((0, encoder.classes), dtype=np.float32)) if with_classes else (empty,)
        batch = staging.gather(pixels) if staging is not None else torch.from_numpy(np.concatenate(pixels))
        out = encoder.encode_batch(batch, with_classes=with_classes)
        out = out if with_classes else (out,)
        return pool_frames(out, [len(p) for p in pixels])

    def batch_of(done_keys, encoded, done_failures) -> tuple:
        return (done_keys, encoded[0], done_failures) + ((encoded[1],) if with_classes else ())

    try:
        for key, (arr, reason) in stream:
            bar.update(1)
            if arr is None:
                failures.append((key, reason or "error"))
                continue
            keys.append(key)
            pixels.append(arr)
            if len(keys) == batch_size:
                yield batch_of(keys, flush(), failures)
                keys, pixels, failures = [], [], []
        if keys or failures:
            yield batch_of(keys, flush(), failures)
    finally:
        stream.close()
        bar.close()
