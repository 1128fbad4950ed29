"""Encode images on a Ray cluster: workers decode and encode, this process alone writes, and a stopped run resumes.

``marconi encode images --ray ADDRESS`` builds the same image run as the local path (:mod:`.build`): only the
encoding of the stored images moves. The unit of work is a batch of image ids. This process (the driver) reads a
batch's bytes from Postgres and hands it to one of the :class:`EncodeWorker` actors, which runs the local mapper
(:func:`marconi.image_search.build.encode_items`: decode, resize, encode) on its node: one CPU each, or one GPU each
(device ``cuda``) where the cluster has GPUs. Each finished batch is written by the driver with COPY into
``image_encodings`` (:mod:`marconi.db.image_encodings`) and committed on its own, under an encoding key (encoder,
weights, device type, dtype). Only committed rows count: a batch whose worker dies is sent again, a driver killed
mid-way loses only its uncommitted batches, and the next run encodes just the images without a row (the primary
key refuses a second copy). Then PCA, calibration, staging and the swap run as in the local path.

Ray stays optional: nothing here imports it until a cluster is asked for; without it the error says how to
install it. The workers need the same Python environment (marconi, ray and the encoder's packages) as the driver;
a weights file given with ``--weights`` is sent to them. The driver runs on a node of the cluster (``--ray auto``
or the head's host:port), or elsewhere through Ray Client (``ray://head:10001``, with ``ray[client]``).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa

from marconi.config import Config
from marconi.db import image_encodings as encodings_db
from marconi.db import images as images_db
from marconi.errors import Unavailable

log = logging.getLogger(__name__)

RAY_REQUIREMENT = "ray==2.60.0"
IN_FLIGHT_PER_WORKER = 2  # one batch running, one waiting: a worker never idles while the driver writes
MAX_TRIES = 3  # a batch that stops its worker this often fails the run (it is probably a file that crashes decoders)


class RayUnavailable(Unavailable):
    """Ray is not installed, or the cluster cannot be reached."""

    code = "ray_unavailable"


class RayWorkersFailed(Unavailable):
    """The cluster's workers could not start the encoder, or stopped answering."""

    code = "ray_workers_failed"


def import_ray():
    """Return the ``ray`` module; raise RayUnavailable saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"--ray needs Ray, which is not installed: pip install '{RAY_REQUIREMENT}' "
                             "(the same version on every node of the cluster)") from None
    return ray


@contextlib.contextmanager
def connected(address: str) -> Iterator:
    """Connect this process to the Ray cluster at ``address`` ("auto", "host:port", "ray://host:10001") and yield
    the ``ray`` module; disconnect at the end (a connection made by the caller is used and left open)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        _check_reachable(address)  # Ray itself retries an address that takes no connection for minutes
        ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayUnavailable(f"cannot reach a Ray cluster at {address!r} ({first}): start one with `ray start --head` "
                             "on this machine and use --ray auto, or give the head's address (host:port); a cluster "
                             "with token authentication also needs RAY_AUTH_MODE=token here") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raise OSError (or ValueError) when a host:port ``address`` takes no TCP connection within ``timeout_s``;
    "auto" and ray:// addresses are left to Ray."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError("not an address of the form host:port")
    with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
        pass


class EncodeWorker:
    """A Ray actor: one encoder loaded on its node, encoding batches of (image id, bytes) like the local path."""

    def __init__(self, encoder: str, device: str, cache_dir: str, weights: tuple[str, bytes] | None,
                 batch_size: int, workers: int, max_pixels: int, compile: bool, threads: int):
        """Load ``encoder`` on ``device``; ``weights`` (file name, bytes) is a weights file sent by the driver."""
        import torch

        from marconi.encoders import load_encoder

        torch.set_num_threads(max(1, threads))
        with tempfile.TemporaryDirectory(prefix="marconi-weights-") as folder:
            weights_path = None
            if weights is not None:  # the model is in memory once loaded: the copy goes with the folder
                weights_path = Path(folder) / weights[0]
                weights_path.write_bytes(weights[1])
            self.encoder = load_encoder(encoder, device=device, cache_dir=Path(cache_dir), weights_path=weights_path,
                                        compile=compile)
        self.batch_size, self.workers, self.max_pixels = batch_size, workers, max_pixels

    def ready(self) -> dict:
        """Return the loaded encoder's description, with where this worker runs (Ray node, host, pid)."""
        import ray

        return {**self.encoder.describe(), "node": ray.get_runtime_context().get_node_id(),
                "host": socket.gethostname(), "pid": os.getpid()}

    def encode(self, items: list[tuple[int, bytes]]):
        """Return (image ids, features, class probabilities or None, failures) of one batch."""
        from marconi.image_search.build import encode_items

        return encode_items(self.encoder, items, self.batch_size, self.workers, False, self.max_pixels)


class Plan(NamedTuple):
    """How a cluster is used: ``workers`` actors on ``device``, one GPU each when ``gpu``, else one CPU each, with
    ``decoders`` decoding processes inside each (0: decode inline)."""

    workers: int
    gpu: bool
    device: str
    decoders: int


def plan_workers(resources: dict, device: str = "auto", workers: int | None = None) -> Plan:
    """Return the :class:`Plan` for a cluster with ``resources`` (``ray.cluster_resources()``).

    Where the cluster has GPUs (and ``device`` is not cpu): one worker per GPU, each decoding in the CPUs its GPU's
    share leaves beside the one it runs on. Otherwise one worker per CPU, decoding inline. ``workers`` overrides
    the count.
    """
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if gpus > 0 and not device.startswith("cpu"):
        return Plan(workers or gpus, True, "cuda", max(0, cpus // gpus - 1))
    return Plan(workers or max(1, cpus), False, "cpu", 0)


def encoding_key(worker: dict, weights_digest: str) -> str:
    """Return the key that features made by ``worker`` (a :meth:`EncodeWorker.ready` answer) are saved under:
    features of another encoder, weights file, preprocessing, device type or dtype never mix with them."""
    what = json.dumps({"weights": weights_digest, "preprocessing": worker["preprocessing"],
                       "features": worker["features"]}, sort_keys=True)
    device = str(worker["device"]).split(":")[0]
    return f"{worker['name']}/{device}/{worker['dtype']}/{hashlib.sha256(what.encode()).hexdigest()[:16]}"


def weights_digest(description: dict) -> str:
    """Return the sha256 of the weights file an encoder loaded (its description's ``loaded_from``), or of the
    description of where its weights came from when it names no file."""
    loaded = description["weights"]["loaded_from"]
    path = Path(loaded["file"]) if loaded.get("file") else None
    if path is not None and path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    return hashlib.sha256(json.dumps(loaded, sort_keys=True, default=str).encode()).hexdigest()


class RayEncoding:
    """Encodes the stored images on a Ray cluster for :func:`marconi.image_search.build.encode_images`.

    Called with the local encode's arguments, it returns what the local encode returns, from ``image_encodings``.
    After a call, ``summary`` says how many images were resumed and encoded, by which workers, how fast.
    """

    def __init__(self, ray, config: Config, workers: int | None = None, weights: Path | None = None,
                 compile: bool = False, start_timeout_s: float = 300.0, stall_timeout_s: float = 600.0):
        """Plan ``workers`` actors (default: one per GPU where the cluster has GPUs, else one per CPU)."""
        self.ray, self.config, self.weights, self.compile = ray, config, weights, compile
        self.start_timeout_s, self.stall_timeout_s = start_timeout_s, stall_timeout_s
        self.plan = plan_workers(ray.cluster_resources(), str(config.device), workers)
        self.summary: dict = {}
        self.worker_pids: list[int] = []

    def __str__(self) -> str:
        """Where the encoding runs, recorded with the run's parameters."""
        kind = "1 GPU" if self.plan.gpu else "1 CPU"
        return f"Ray cluster: {self.plan.workers} workers, {kind} each (device {self.plan.device})"

    def _start(self, enc, batch_size: int, workers: int, max_pixels: int) -> list:
        """Start the actors and return those that loaded the encoder within the start timeout."""
        ray = self.ray
        weights = (self.weights.name, self.weights.read_bytes()) if self.weights is not None else None
        decoders = workers or self.plan.decoders
        actor = ray.remote(EncodeWorker).options(num_cpus=1, num_gpus=1 if self.plan.gpu else 0, max_restarts=1,
                                                 max_task_retries=0, scheduling_strategy="SPREAD")
        args = (enc.name, self.plan.device, str(self.config.model_dir),
                ray.put(weights) if weights is not None else None, batch_size, decoders, max_pixels, self.compile, 1)
        actors = [actor.remote(*args) for _ in range(self.plan.workers)]
        probes = {a.ready.remote(): a for a in actors}
        done, waiting = ray.wait(list(probes), num_returns=len(probes), timeout=self.start_timeout_s)
        started, described, errors = [], [], []
        for ref in done:
            try:
                described.append(ray.get(ref))
                started.append(probes[ref])
            except ray.exceptions.RayActorError as exc:
                errors.append(exc)
        for ref in waiting:  # never scheduled (the cluster is busy): go on without them
            ray.kill(probes[ref])
        if not started:
            why = _last_line(errors[0]) if errors else f"none started within {self.start_timeout_s:.0f}s"
            raise RayWorkersFailed(f"no Ray worker could load the {enc.name} encoder: {why}. Each node needs the "
                                   "same Python environment as this one (marconi, ray, the encoder's packages)")
        self.worker_pids = [d["pid"] for d in described]
        self.summary["workers"] = [f"node {d['node'][:8]} on {d['host']}, pid {d['pid']} ({d['device']}, {d['dtype']})"
                                   for d in described]
        self._described = described[0]
        return started

    def __call__(self, engine: sa.Engine, enc, n: int, batch_size: int, workers: int, progress: bool,
                 max_pixels: int):
        """Encode the images missing from ``image_encodings`` on the cluster; return (ids, features, class
        probabilities or None, failures) of every stored image encoded under this run's encoding key."""
        t0 = time.perf_counter()
        actors = self._start(enc, batch_size, workers, max_pixels)
        try:
            key = encoding_key(self._described, weights_digest(enc.describe()))
            with engine.connect() as conn:
                missing = encodings_db.missing_ids(conn, key)
            started = time.perf_counter()
            self.summary.update(encoding=key, resumed=n - len(missing), start_seconds=round(started - t0, 2))
            failures = self._dispatch(engine, actors, key, missing, batch_size, progress, enc.name)
            seconds = time.perf_counter() - started
            self.summary.update(encoded=len(missing) - len(failures), encode_seconds=round(seconds, 2),
                                images_per_second=round(len(missing) / seconds, 1) if missing else None)
        finally:
            for a in actors:
                self.ray.kill(a)
        with engine.connect() as conn:
            ids, feats, probs = encodings_db.load(conn, key)
        return ids, feats, probs, failures

    def _dispatch(self, engine: sa.Engine, actors: list, key: str, missing: list[int], batch_size: int,
                  progress: bool, name: str) -> list[tuple[int, str]]:
        """Send the batches of ``missing`` to the actors and commit each result as it comes; return the failures.

        A batch whose actor died goes back to the queue; the actor is used again once Ray has restarted it.
        """
        from marconi.progress import progress as progress_bar

        ray = self.ray
        queue = collections.deque(missing[i:i + batch_size] for i in range(0, len(missing), batch_size))
        tries: collections.Counter = collections.Counter()
        load = dict.fromkeys(range(len(actors)), 0)
        live = set(load)
        pending: dict = {}  # task → (actor index, batch ids)
        probes: dict = {}  # restart probe → actor index
        failures: list[tuple[int, str]] = []
        retried = 0
        bar = progress_bar(total=len(missing), unit="img", desc=f"encode {name} on Ray", enabled=progress)
        try:
            with engine.connect() as reader:
                while queue or pending:
                    while queue and (i := _least_busy(live, load)) is not None:
                        ids = queue.popleft()
                        items = images_db.image_bytes(reader, ids)
                        reader.rollback()  # no snapshot held open between batches
                        if not items:  # deleted since the run began
                            bar.update(len(ids))
                            continue
                        pending[actors[i].encode.remote(items)] = (i, ids)
                        load[i] += 1
                    if not pending and not queue:
                        break
                    if not pending and not probes:
                        raise RayWorkersFailed(f"every Ray worker stopped; {len(queue) * batch_size} images or fewer "
                                               "are left: run the same command again to encode just those")
                    ready, _ = ray.wait([*pending, *probes], num_returns=1, timeout=self.stall_timeout_s)
                    if not ready:
                        raise RayWorkersFailed(f"no Ray worker answered for {self.stall_timeout_s:.0f}s; what was "
                                               "written is kept: run the same command again to go on")
                    ref = ready[0]
                    if ref in probes:
                        i = probes.pop(ref)
                        with contextlib.suppress(ray.exceptions.RayActorError):
                            ray.get(ref)
                            live.add(i)
                        continue
                    i, ids = pending.pop(ref)
                    load[i] -= 1
                    try:
                        got, feats, probs, failed = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:
                        tries[ids[0]] += 1
                        if tries[ids[0]] >= MAX_TRIES:
                            raise RayWorkersFailed(
                                f"images {ids[0]}-{ids[-1]} stopped a Ray worker {MAX_TRIES} times "
                                f"({_last_line(exc)}); the other batches are saved. Encode with --workers 1 (decoders "
                                "in their own processes skip a file that crashes them), then run again") from None
                        queue.appendleft(ids)
                        retried += 1
                        if i in live:
                            live.discard(i)
                            probes[actors[i].ready.remote()] = i
                        log.warning("a Ray worker stopped (%s); images %d-%d go to another", _last_line(exc),
                                    ids[0], ids[-1])
                        continue
                    with engine.begin() as conn:
                        encodings_db.save(conn, key, got, feats, probs)
                    failures += failed
                    bar.update(len(ids))
        finally:
            bar.close()
            self.summary["retried_batches"] = retried
        return failures


def _least_busy(live: set[int], load: dict[int, int]) -> int | None:
    """Return the live actor with the fewest batches in flight, or None when each has its fill."""
    free = [i for i in sorted(live) if load[i] < IN_FLIGHT_PER_WORKER]
    return min(free, key=load.__getitem__) if free else None


def _last_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's message (Ray's messages end with the cause)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def encode_images_on_ray(engine: sa.Engine, config: Config, address: str, encoder: str | None = None,
                         batch_size: int = 32, workers: int = 0, pca_dims: int = 100, weights: Path | None = None,
                         progress: bool = True, compile: bool = False, ray_workers: int | None = None) -> dict:
    """Encode every stored image on the Ray cluster at ``address`` into a new model run and swap it in; return the
    local path's summary plus ``ray`` (resumed and encoded counts, workers, speed).

    ``ray_workers`` actors (default: one per GPU, else one per CPU of the cluster); ``workers`` decoding processes
    inside each actor; ``compile`` compiles the actors' encoders. A run stopped at any point resumes where it
    stopped when run again with the same encoder.
    """
    from marconi.image_search.build import encode_images

    import_ray()
    with connected(address) as ray:
        encoding = RayEncoding(ray, config, ray_workers, weights, compile)
        out = encode_images(engine, config, encoder, batch_size, workers, pca_dims, weights, progress,
                            encode_all=encoding)
    out["ray"] = encoding.summary
    return out

