"""Animated GIFs are first-class: imported as they are, encoded from several frames, found by words, played."""

from __future__ import annotations

import io

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from marconi.config import Config
from marconi.db import make_engine


def _gif(paths, size=(200, 150)) -> bytes:
    """An animated GIF whose frames are the given photos."""
    frames = [Image.open(p).convert("RGB").resize(size) for p in paths]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=300, loop=0)
    return buf.getvalue()


@pytest.fixture(scope="module")
def animated(new_database, base_config, data_dir, tmp_path_factory):
    """A collection of two animated GIFs (cups, sunflowers) among still photos, imported without labels and
    encoded: (engine, {name: image id}, the GIFs' frame paths)."""
    from marconi.image_search.build import encode_images
    from marconi.importers.images import import_images

    caltech = data_dir / "images" / "caltech101"
    root = tmp_path_factory.mktemp("animated") / "collection"
    root.mkdir()
    frames = {name: sorted((caltech / name).glob("*.jpg"))[:4] for name in ("cup", "sunflower")}
    for name, paths in frames.items():
        (root / f"{name}.gif").write_bytes(_gif(paths))
    for name in ("Motorbikes", "dalmatian", "watch", "airplanes"):
        for p in sorted((caltech / name).glob("*.jpg"))[:4]:
            (root / f"{name}_{p.name}").write_bytes(p.read_bytes())
    eng = make_engine(Config(), url=new_database())
    assert import_images(eng, root, progress=False)["failed"] == 0
    encode_images(eng, base_config.with_overrides(device="cpu", encoder="efficientnet-lite0"), progress=False)
    with eng.connect() as conn:
        ids = {r[1].rsplit("/", 1)[-1]: r[0] for r in conn.execute(sa.text("SELECT id, source_url FROM images"))}
    yield eng, ids, frames
    eng.dispose()


def test_gifs_are_stored_animated(animated):
    eng, ids, _ = animated
    with eng.connect() as conn:
        fmt, data = conn.execute(sa.text("SELECT i.format, b.data FROM images i JOIN image_blobs b "
                                         "ON b.image_id = i.id WHERE i.id = :i"), {"i": ids["cup.gif"]}).one()
    assert fmt == "GIF" and Image.open(io.BytesIO(bytes(data))).n_frames == 4


def test_a_gif_is_encoded_from_several_frames(animated):
    """Its features are the (re-normalised) mean of its frames' features, not its first frame's."""
    from marconi.encoders import load_encoder

    eng, ids, frames = animated
    with eng.connect() as conn:
        stored = np.asarray(conn.execute(sa.text("SELECT full_vec FROM image_vectors WHERE image_id = :i"),
                                         {"i": ids["cup.gif"]}).scalar(), dtype=np.float32)
        data = bytes(conn.execute(sa.text("SELECT data FROM image_blobs WHERE image_id = :i"),
                                  {"i": ids["cup.gif"]}).scalar())
    encoder = load_encoder("efficientnet-lite0", device="cpu")
    gif = Image.open(io.BytesIO(data))
    per_frame = []
    for i in range(gif.n_frames):
        gif.seek(i)
        per_frame.append(encoder.encode_image(gif.convert("RGB")))
    mean = np.mean(per_frame, axis=0)
    mean /= np.linalg.norm(mean)
    assert float(stored @ mean) > 0.999
    assert float(stored @ per_frame[0]) < 0.995  # not just the first frame


@pytest.mark.parametrize("query, name", [("a cup", "cup.gif"), ("sunflower", "sunflower.gif")])
def test_words_find_the_gifs(animated, base_config, query, name):
    from marconi.image_search.text_search import TextSearcher

    eng, ids, _ = animated
    with eng.connect() as conn:
        answer = TextSearcher(base_config.with_overrides(device="cpu")).search(conn, query, 3)
    assert answer["matches"][0]["id"] == ids[name]
    assert answer["matches"][0]["format"] == "GIF"


def test_the_api_marks_gifs_animated_so_pages_play_them(animated, base_config):
    from marconi import create_app

    eng, ids, _ = animated
    url = eng.url.render_as_string(hide_password=False).replace("postgresql+psycopg2://", "postgresql://")
    client = create_app(base_config.with_overrides(database_url=url, device="cpu")).test_client()
    body = client.get("/api/images/search?q=sunflower&k=3").get_json()
    assert body["matches"][0]["animated"] is True and body["matches"][0]["id"] == ids["sunflower.gif"]
    still = client.get(f"/api/images/{ids['Motorbikes_image_0001.jpg']}").get_json()
    assert still["animated"] is False
    r = client.get(body["matches"][0]["image_url"])
    assert r.mimetype == "image/gif" and Image.open(io.BytesIO(r.data)).n_frames == 4


def test_an_uploaded_gif_is_searched_and_tagged_by_all_its_frames(animated, base_config):
    """Posted as a query, a GIF is pooled over its frames like the stored one: it finds itself, exactly."""
    from marconi import create_app

    eng, ids, frames = animated
    url = eng.url.render_as_string(hide_password=False).replace("postgresql+psycopg2://", "postgresql://")
    client = create_app(base_config.with_overrides(database_url=url, device="cpu")).test_client()
    gif = _gif(frames["cup"])
    body = client.post("/api/images/search", data={"image": (io.BytesIO(gif), "cup.gif")}).get_json()
    assert body["query"]["frames"] == 4
    assert body["matches"][0]["id"] == ids["cup.gif"] and body["matches"][0]["similarity"] > 0.999
    first_frame = io.BytesIO()
    Image.open(io.BytesIO(gif)).convert("RGB").save(first_frame, "PNG")
    alone = client.post("/api/images/search", data={"image": (io.BytesIO(first_frame.getvalue()), "f.png")})
    assert "frames" not in alone.get_json()["query"]  # a still image is one frame
    assert alone.get_json()["matches"][0]["similarity"] < body["matches"][0]["similarity"]
    tagged = client.post("/api/images/tags", data={"image": (io.BytesIO(gif), "cup.gif")}).get_json()
    assert tagged["query"]["frames"] == 4 and tagged["tags"]
