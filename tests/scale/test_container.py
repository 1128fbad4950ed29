"""The container image and its compose file, run for real with podman: PostgreSQL with pgvector, then the API.

Opt-in (``MARCONI_TEST_CONTAINER=1``), because building the image takes ten minutes and about 4 GB, and needs
podman, podman-compose and debootstrap (``apt-get install podman podman-compose debootstrap``). The test builds the
image with ``scripts/container.sh build`` (layers are cached, so a second run is quick), starts the compose project
under its own name with fresh volumes, loads the sample data into it, asks the API and the status command, and
removes the project and its volumes. On a host where podman's defaults cannot start a container, set
``CONTAINERS_CONF=deploy/container/containers-compat.conf`` (see the README's Troubleshooting).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "marconi-test"

pytestmark = [
    pytest.mark.skipif(os.environ.get("MARCONI_TEST_CONTAINER") != "1",
                       reason="set MARCONI_TEST_CONTAINER=1 to build and run the container image (10 minutes)"),
    pytest.mark.skipif(not (shutil.which("podman") and shutil.which("podman-compose")),
                       reason="podman and podman-compose are not installed"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _container(env: dict, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/container.sh", *args], cwd=ROOT, env=env, timeout=timeout, check=True,
                          capture_output=True, text=True)


def _wait(url: str, seconds: float = 180) -> requests.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            resp = requests.get(url, timeout=5)
            if resp.status_code < 500:
                return resp
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {seconds} s")
        time.sleep(2)


@pytest.fixture(scope="module")
def served(data_dir):
    port = _free_port()
    env = {**os.environ, "PORT": str(port), "COMPOSE_PROJECT": PROJECT, "MARCONI_DATA_DIR": str(data_dir)}
    _container(env, "build")
    _container(env, "down", "-v", timeout=300)  # a project left by an interrupted run
    _container(env, "up", timeout=300)
    try:
        yield f"http://127.0.0.1:{port}", env
    finally:
        _container(env, "down", "-v", timeout=300)


def test_the_api_serves_from_the_compose_database(served):
    url, env = served
    assert _wait(url + "/healthz").status_code == 200
    assert requests.get(url + "/api/status", timeout=10).json()["counts"]["tracks"] == 0  # fresh volumes

    _container(env, "demo", timeout=1800)  # load yes_small and Caltech-101, train and encode inside the container
    radio = requests.post(url + "/api/radio", json={"seeds": ["yes_small:61"], "size": 5}, timeout=30)
    assert radio.status_code == 200 and len(radio.json()["playlist"]) == 5
    found = requests.get(url + "/api/images/search", params={"q": "aeroplane", "k": 5}, timeout=60).json()
    assert [m["label"] for m in found["matches"]].count("airplanes") >= 3
    assert requests.get(url + "/search", timeout=10).status_code == 200
    assert requests.get(url + "/api/docs", timeout=10).status_code == 200
    assert requests.get(url + "/api/status", timeout=10).json()["counts"]["images"] >= 2000


def test_the_compose_database_has_pgvector(served):
    _, env = served
    out = _container(env, "status", "--json", timeout=120).stdout
    status, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])  # podman-compose adds lines of its own
    assert status["knn"]["pgvector"] and status["knn"]["songs"] == "pgvector HNSW"
    assert status["database"].startswith("postgresql://marconi:") and "@db:5432/marconi" in status["database"]
