"""Encoding on a Ray cluster: a head and a second node process on this machine encode 60 Caltech photos.

The cluster's run must equal the local path's (same ids, vectors within float tolerance, same tags), and a run
whose driver is killed (kill -9) and whose worker is killed mid-way must lose nothing and write nothing twice: the
rerun encodes only what the killed driver had not committed. Every Ray process is started here, in its own
process group, and stopped by that group's id at the end. Ray being optional, the first two tests run without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from conftest import CLASSES

BATCH = 8  # images per unit of work (a multiple of the CPU encoder's micro-batch of 4, as the local batch is)
PER_CLASS = 10  # 6 classes: 60 photos
RAY = Path(sys.executable).with_name("ray")


def test_importing_marconi_and_the_local_encode_path_never_imports_ray():
    code = ("import sys, marconi, marconi.cli, marconi.cli.images, marconi.image_search.build, "
            "marconi.image_search.ray_encode; marconi.create_app; assert 'ray' not in sys.modules, 'ray imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_ray_option_without_ray_says_in_one_line_how_to_install_it():
    code = ("import sys; sys.modules['ray'] = None; from marconi.cli import main; "
            "main(['--database-url', 'postgresql://nobody@127.0.0.1:1/none', 'encode', 'images', '--ray', 'auto'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'ray==" in lines[0], done.stderr


def test_an_address_where_no_cluster_listens_fails_at_once_saying_what_to_do():
    pytest.importorskip("ray")
    from marconi.image_search.ray_encode import RayUnavailable, connected

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens there
    t0 = time.monotonic()
    with pytest.raises(RayUnavailable, match="ray start --head"), connected(address):
        pass
    assert time.monotonic() - t0 < 10


def test_workers_are_planned_per_gpu_where_the_cluster_has_gpus_else_per_cpu():
    from marconi.image_search.ray_encode import Plan, plan_workers

    assert plan_workers({"CPU": 2.0}) == Plan(2, False, "cpu", 0)
    assert plan_workers({"CPU": 32.0, "GPU": 2.0}) == Plan(2, True, "cuda", 15)
    assert plan_workers({"CPU": 32.0, "GPU": 2.0}, device="cpu") == Plan(32, False, "cpu", 0)
    assert plan_workers({"CPU": 2.0, "GPU": 4.0}, workers=3) == Plan(3, True, "cuda", 0)


def _start_node(root: Path, name: str, *args: str) -> subprocess.Popen:
    """Start one Ray node (`ray start --block`) in a process group of its own; its log is root/<name>.log."""
    log = (root / f"{name}.log").open("w")
    return subprocess.Popen(
        [str(RAY), "start", "--block", "--num-cpus", "1", "--object-store-memory", str(150 * 2**20),
         "--disable-usage-stats", "--temp-dir", str(root / name), *args],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _head_address(log: Path, node: subprocess.Popen, timeout_s: float = 90.0) -> str:
    """Wait for the head's log to say the address other nodes join with; return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(r"ray start --address='([^']+)'", log.read_text())
        if found:
            return found.group(1)
        if node.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"the Ray head did not start:\n{log.read_text()[-3000:]}")


def _stop(nodes: list[subprocess.Popen]) -> None:
    """Stop nodes by their process groups: SIGTERM, then SIGKILL after 3 s (a Ray node drains for 30 s otherwise).

    A node's workers run in groups of their own and exit when their node's raylet goes.
    """
    deadline = time.monotonic() + 3
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, sig)
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(n.poll() is None for n in nodes):
            time.sleep(0.1)
    for node in nodes:
        node.wait()


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray head and a second node, one CPU each, as separate process trees; yield the head's address.

    Ray's token authentication is off for this throwaway cluster, its nodes and its drivers alike (the environment
    says so to every process started here): a token left in ~/.ray would switch it on for `ray start` but not for
    this process, whose Ray read its settings when first imported.
    """
    env = pytest.MonkeyPatch()
    env.setenv("RAY_AUTH_MODE", "disabled")
    ray = pytest.importorskip("ray")
    root = Path(tempfile.mkdtemp(prefix="mray-", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    nodes = []
    try:
        nodes.append(_start_node(root, "head", "--head", "--port", "0", "--include-dashboard", "false"))
        address = _head_address(root / "head.log", nodes[0])
        nodes.append(_start_node(root, "node", "--address", address))
        ray.init(address=address, logging_level=logging.WARNING)
        deadline = time.monotonic() + 60
        while ray.cluster_resources().get("CPU", 0) < 2:
            assert time.monotonic() < deadline, (root / "node.log").read_text()[-3000:]
            time.sleep(0.2)
        yield address
    finally:
        ray.shutdown()
        _stop(nodes)
        env.undo()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def local_index(engine, data_dir, tmp_path_factory, base_config):
    """60 photos imported and encoded by the local path: (config, serving vectors by id, tags by id)."""
    import torch

    from marconi.image_search.build import encode_images
    from marconi.importers.images import import_images

    root = tmp_path_factory.mktemp("ray") / "caltech101"
    for cls in CLASSES:
        (root / cls).mkdir(parents=True)
        for f in sorted((data_dir / "images" / "caltech101" / cls).glob("*.jpg"))[:PER_CLASS]:
            shutil.copy(f, root / cls / f.name)
    import_images(engine, root, progress=False)
    cfg = base_config.with_overrides(device="cpu", encoder="efficientnet-lite0")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker: on a shared machine, threads waiting for each other crawl
    try:
        encode_images(engine, cfg, batch_size=32, progress=False)
    finally:
        torch.set_num_threads(threads)
    return cfg, *_served(engine)


def _served(engine) -> tuple[dict[int, np.ndarray], dict[int, dict[str, float]]]:
    """The serving image run's full vectors and tags (with scores), by image id."""
    from marconi.db.images import serving_vectors

    with engine.connect() as conn:
        _, ids, full, _ = serving_vectors(conn)
        tags: dict[int, dict[str, float]] = {}
        for image_id, tag, score in conn.execute(sa.text("SELECT image_id, tag, score FROM image_tags")):
            tags.setdefault(image_id, {})[tag] = score
    return dict(zip(ids, full, strict=True)), tags


def _assert_same_index(engine, vectors: dict, tags: dict) -> None:
    got_vectors, got_tags = _served(engine)
    assert sorted(got_vectors) == sorted(vectors) and len(vectors) == PER_CLASS * len(CLASSES)
    gap = max(float(np.abs(got_vectors[i] - vectors[i]).max()) for i in vectors)
    assert gap < 1e-4, f"vectors differ from the local path's by up to {gap}"
    assert {i: set(t) for i, t in got_tags.items()} == {i: set(t) for i, t in tags.items()}
    assert max(abs(got_tags[i][t] - s) for i in tags for t, s in tags[i].items()) < 1e-3


def _count_encodings(engine) -> int:
    from marconi.db import image_encodings

    with engine.connect() as conn:
        return image_encodings.count(conn)


def test_the_cluster_encodes_like_the_local_path_and_a_killed_driver_and_worker_lose_nothing(
        local_index, ray_cluster, engine, db_url, monkeypatch, tmp_path):
    from marconi.db import image_encodings
    from marconi.image_search import ray_encode

    cfg, vectors, tags = local_index
    n = len(vectors)
    # 1. a driver killed (kill -9) mid-way: what it committed stays, in whole batches
    driver = subprocess.Popen(
        [sys.executable, "-m", "marconi", "--database-url", db_url, "encode", "images", "--ray", ray_cluster,
         "--ray-workers", "2", "--batch-size", str(BATCH), "--device", "cpu", "--encoder", "efficientnet-lite0"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "driver.log").open("w"))
    deadline = time.monotonic() + 120
    try:
        while (saved := _count_encodings(engine)) < 2 * BATCH:
            assert driver.poll() is None, f"the driver ended unkilled: {(tmp_path / 'driver.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the driver committed nothing in 120 s"
            time.sleep(0.05)
    finally:
        driver.kill()
        driver.wait()
    saved = _count_encodings(engine)
    assert 0 < saved < n and saved % BATCH == 0, f"{saved} rows: not whole batches of {BATCH}, or all of them"

    # 2. the rerun: a worker killed as the first batch is written; its batches go to the other worker
    killed: list[int] = []
    save = image_encodings.save
    encodings: list[ray_encode.RayEncoding] = []

    class Recorded(ray_encode.RayEncoding):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            encodings.append(self)

    def save_then_kill_a_worker(conn, *args, **kwargs):
        if not killed:
            killed.append(encodings[0].worker_pids[0])
            os.kill(killed[0], signal.SIGKILL)
        return save(conn, *args, **kwargs)

    monkeypatch.setattr(ray_encode, "RayEncoding", Recorded)
    monkeypatch.setattr(image_encodings, "save", save_then_kill_a_worker)
    out = ray_encode.encode_images_on_ray(engine, cfg, ray_cluster, batch_size=BATCH, progress=False, ray_workers=2)
    summary = out["ray"]
    assert killed and summary["retried_batches"] >= 1, summary
    assert len({w.split()[1] for w in summary["workers"]}) == 2, f"both nodes should work: {summary['workers']}"
    assert (summary["resumed"], summary["encoded"]) == (saved, n - saved), summary
    with engine.connect() as conn:
        assert image_encodings.count(conn) == n  # the primary key makes a second copy impossible: none is lost
        image_runs = sa.text("SELECT id, status, params FROM model_runs WHERE kind = 'images'")
        runs = {r.id: r for r in conn.execute(image_runs)}
    assert runs[out["run_id"]].status == "serving" and "failed" in {r.status for r in runs.values()}  # killed driver
    assert runs[out["run_id"]].params["encoded_by"] == "Ray cluster: 2 workers, 1 CPU each (device cpu)"
    _assert_same_index(engine, vectors, tags)
