"""One run per answer, under traffic: clients ask a served instance while models are swapped with new dimensions.

Songs are retrained with another vector size and images re-encoded with another PCA width while six client
threads ask gunicorn for radios and image searches. No answer may fail, and identical questions labelled with the
same model run must get identical answers (an answer that mixed two runs would break one of these).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import defaultdict

import pytest
import requests
import sqlalchemy as sa
from synthetic_playlists import synthetic_playlists

from marconi.db import make_engine
from marconi.serving import background_gunicorn

N_SONGS = 400


@pytest.fixture(scope="module")
def served(new_database, base_config, data_dir, tmp_path_factory):
    """A database with songs trained and a few Caltech images encoded, served by gunicorn (2 workers x 4 threads)."""
    from marconi.image_search.build import encode_images
    from marconi.importers.images import import_images
    from marconi.importers.playlists import import_playlists
    from marconi.training.song2vec import train_songs

    root = tmp_path_factory.mktemp("swaps")
    synthetic_playlists(root / "synth", n_songs=N_SONGS, n_artists=40, n_playlists=3000)
    for cls in ("cup", "sunflower"):
        (root / "caltech101" / cls).mkdir(parents=True)
        for f in sorted((data_dir / "images" / "caltech101" / cls).glob("*.jpg"))[:10]:
            shutil.copy(f, root / "caltech101" / cls / f.name)
    url = new_database()
    eng = make_engine(base_config, url=url)
    import_playlists(eng, root / "synth", progress=False)
    train_songs(eng, progress=False, epochs=2, min_count=1, workers=1, vector_size=16)
    import_images(eng, root / "caltech101", progress=False)
    cfg = base_config.with_overrides(device="cpu")
    encode_images(eng, cfg, progress=False, pca_dims=10)
    with background_gunicorn(url, workers=2) as base:
        yield eng, cfg, base
    eng.dispose()


def test_identical_questions_on_one_run_get_identical_answers_while_models_swap(served, data_dir):
    from marconi.image_search.build import encode_images
    from marconi.training.song2vec import train_songs

    eng, cfg, base = served
    photos = [(data_dir / "images" / "caltech101" / c / "image_0015.jpg").read_bytes() for c in ("cup", "sunflower")]
    radios = [["synth:1"], ["synth:2", "synth:50"], ["synth:7", "synth:8", "synth:9"]]
    answers: dict = defaultdict(set)
    failures: list = []
    stop = threading.Event()

    def radio_client(n: int):
        session = requests.Session()
        while not stop.is_set():
            seeds = radios[n % len(radios)]
            r = session.post(base + "/api/radio", json={"seeds": seeds, "size": 10}, timeout=30)
            if r.status_code != 200:
                failures.append(("radio", r.status_code, r.text[:300]))
                continue
            body = r.json()
            answers[("radio", tuple(seeds), body["model_run"])].add(
                tuple((p["key"], p["score"]) for p in body["playlist"]))
            n += 1

    def image_client(n: int):
        session = requests.Session()
        while not stop.is_set():
            photo = n % len(photos)
            r = session.post(base + "/api/images/search", files={"image": ("q.jpg", photos[photo])}, timeout=30)
            if r.status_code != 200:
                failures.append(("images", r.status_code, r.text[:300]))
                continue
            body = r.json()
            answers[("images", photo, body["model_run"])].add(
                (body["confidence"], tuple((m["id"], m["similarity"]) for m in body["matches"])))
            n += 1

    clients = [threading.Thread(target=radio_client, args=(i,)) for i in range(4)]
    clients += [threading.Thread(target=image_client, args=(i,)) for i in range(2)]
    for c in clients:
        c.start()
    try:
        time.sleep(2)
        for i, (vector_size, pca_dims) in enumerate([(24, 16), (16, 12), (32, 10)]):
            train_songs(eng, progress=False, epochs=2, min_count=1, workers=1, vector_size=vector_size, seed=i + 2)
            encode_images(eng, cfg, progress=False, pca_dims=pca_dims)
            time.sleep(1)
    finally:
        stop.set()
        for c in clients:
            c.join(60)
    assert not failures, failures[:5]
    for key, variants in answers.items():
        assert len(variants) == 1, f"{key}: {len(variants)} different answers under one model run"
    with eng.connect() as conn:
        served_runs = dict(conn.execute(sa.text(
            "SELECT kind, count(*) FROM model_runs WHERE status IN ('serving', 'retired') GROUP BY kind")).all())
    assert served_runs == {"songs": 4, "images": 4}
    # the clients saw the swaps: answers labelled with several runs of each kind
    assert len({k[2] for k in answers if k[0] == "radio"}) >= 3
    assert len({k[2] for k in answers if k[0] == "images"}) >= 3
