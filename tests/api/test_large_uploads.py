"""Large uploads (#13): a 40-megapixel photo is decoded no larger than the encoder needs, so a worker stays small.

The memory test runs the app in a subprocess and reads its peak resident size (``ru_maxrss``) before and after the
upload: the pytest process itself holds models and databases of other tests, so only a fresh process is honest.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

BIG = (7744, 5164)  # 40 megapixels, a camera's full size
WORKER_BOUND_MIB = 1024  # the bound for a whole worker
UPLOAD_GROWTH_MIB = 100  # what one 40 MP JPEG may add to a warm worker (a full decode alone is 153 MiB)


def _post(client, data: bytes, name: str = "q.jpg", **form):
    return client.post("/api/images/search", data={"image": (io.BytesIO(data), name), **form},
                       content_type="multipart/form-data")


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def big_jpeg(image_sets, tmp_path_factory):
    """A held-out Motorbikes photo blown up to 40 MP (with grain, as a camera's file has), saved as a JPEG file."""
    photo = Image.open(sorted(image_sets[1].joinpath("Motorbikes").glob("*.jpg"))[0]).convert("RGB")
    big = np.asarray(photo.resize(BIG, Image.Resampling.BILINEAR)).astype(np.int16)
    big += np.random.default_rng(0).integers(-3, 4, big.shape, dtype=np.int16)
    path = tmp_path_factory.mktemp("large") / "big.jpg"
    Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(path, quality=85)
    return path


# One worker's life: start, answer a small photo (model loaded, first forward pass done), then the 40 MP upload. The
# peak is the kernel's high-water mark (VmHWM), reset after the warm-up: starting the app peaks higher than serving.
_WORKER = textwrap.dedent("""
    import io, json, resource, sys
    from PIL import Image
    from marconi import create_app

    def status(key):
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024
    url, home, path = sys.argv[1:4]
    client = create_app({"database_url": url, "home": home}).test_client()
    started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    def post(data):
        r = client.post("/api/images/search", data={"image": (io.BytesIO(data), "q.jpg")},
                        content_type="multipart/form-data")
        return r.status_code, r.get_json()
    small = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 120, 200)).save(small, "JPEG")
    assert post(small.getvalue())[0] == 200
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    warm = status("VmRSS:")
    status_code, body = post(open(path, "rb").read())
    print(json.dumps({"status": status_code, "query": body.get("query"), "label": (body.get("matches") or [{}])[0]
                      .get("label"), "started_mib": started, "warm_mib": warm, "peak_mib": status("VmHWM:")}))
""")


def test_a_40mp_jpeg_upload_is_answered_and_the_worker_stays_small(images_engine, trained_url, base_config,
                                                                  big_jpeg):
    run = subprocess.run([sys.executable, "-c", _WORKER, trained_url[0], str(base_config.home), str(big_jpeg)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\nworker: {got['started_mib']:.0f} MiB started, {got['warm_mib']:.0f} MiB warm, "
          f"{got['peak_mib']:.0f} MiB after the 40 MP upload")
    assert got["status"] == 200 and got["query"] == {"width": BIG[0], "height": BIG[1]}
    assert got["label"] == "Motorbikes"
    assert got["peak_mib"] - got["warm_mib"] < UPLOAD_GROWTH_MIB, got
    assert got["peak_mib"] < WORKER_BOUND_MIB, got


@pytest.fixture(scope="module")
def lenient_client(images_engine, trained_url, base_config):
    """An app whose operator raised MARCONI_MAX_IMAGE_PIXELS to 100 MP: JPEGs that large are decoded reduced,
    other formats still only up to the decode budget."""
    from marconi import create_app

    app = create_app({"database_url": trained_url[0], "home": str(base_config.home),
                      "max_image_pixels": 100_000_000})
    app.testing = True
    return app.test_client()


def test_a_png_beyond_the_decode_budget_is_413_saying_the_limit(lenient_client):
    side = 6400  # 41 MP: under the operator's 100 MP, over what a whole decode may produce
    png = _encoded(Image.new("RGB", (side, side), (30, 90, 160)), "PNG", compress_level=1)
    r = _post(lenient_client, png, "huge.png")
    body = r.get_json()
    assert r.status_code == 413, body
    assert body["code"] == "image_too_large"
    from marconi.imageio import MAX_WHOLE_DECODE_PIXELS

    assert f"{MAX_WHOLE_DECODE_PIXELS:,}" in body["error"] and "6400x6400" in body["error"], body
    # The same photo as a JPEG is decoded reduced, so it is answered.
    jpeg = _encoded(Image.new("RGB", (side, side), (30, 90, 160)), "JPEG")
    assert _post(lenient_client, jpeg).status_code == 200


def test_a_box_on_a_large_photo_selects_the_same_region(client, app, images_engine, image_sets):
    """A collage blown up 8 times: the box (in its full-size pixels) around one cell finds what the same cell
    finds when the photo is decoded whole, and the answer describes the photo and the box at full size."""
    from marconi.imageio import load_image

    cells = ["dalmatian", "Motorbikes", "cup", "sunflower"]
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    for i, label in enumerate(cells):
        photo = Image.open(sorted(image_sets[1].joinpath(label).glob("*.jpg"))[0]).convert("RGB")
        photo.thumbnail((320, 240))
        canvas.paste(photo, ((i % 2) * 320 + (320 - photo.width) // 2, (i // 2) * 240 + (240 - photo.height) // 2))
    big = _encoded(canvas.resize((5120, 3840), Image.Resampling.BICUBIC), "JPEG", quality=92)
    box = (2560, 1920, 2560, 1920)  # the bottom-right cell: the sunflower

    r = _post(client, big, box=",".join(map(str, box)))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["query"] == {"width": 5120, "height": 3840, "box": list(box)}

    searcher = app.extensions["marconi.image_searcher"]
    photo = searcher.query_photo(big, box)
    assert max(photo.frames[0].size) < 1000  # decoded reduced: not the 2560x1920 pixels of the box
    whole = load_image(big).crop((box[0], box[1], box[0] + box[2], box[1] + box[3]))
    with images_engine.connect() as conn:
        encoder = searcher.snapshot(conn).encoder
        full = searcher.search(conn, whole, 10)
    cosine = float(encoder.encode_image(photo.frames) @ encoder.encode_image(whole))
    assert cosine > 0.99, cosine
    assert [m["id"] for m in body["matches"][:5]] == [m["id"] for m in full["matches"][:5]]
    assert body["matches"][0]["label"] == "sunflower"


def _gif_bomb() -> bytes:
    """A 64x64 two-frame GIF whose second frame sits at (60000, 60000): seeking it grows the canvas to 3.6 GP."""
    frames = [Image.new("P", (64, 64), 1), Image.new("P", (64, 64), 2)]
    for f in frames:
        f.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    data = bytearray(_encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100,
                              optimize=False, disposal=1))
    at = data.index(b",", data.index(b",") + 1)  # the second image descriptor
    while data[at + 5:at + 9] != struct.pack("<HH", 64, 64):
        at = data.index(b",", at + 1)
    data[at + 1:at + 5] = struct.pack("<HH", 60000, 60000)
    return bytes(data)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds almost none."""
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("path", ["/api/images/search", "/api/images/tags"])
@pytest.mark.parametrize("bomb", ["gif frame", "png header"])
def test_a_decompression_bomb_is_413_never_500(lenient_client, path, bomb):
    data = _gif_bomb() if bomb == "gif frame" else _png_header(20_000, 20_000)  # 400 MP: past Pillow's own limit
    r = lenient_client.post(path, data={"image": (io.BytesIO(data), "bomb")}, content_type="multipart/form-data")
    body = r.get_json()
    assert r.status_code == 413 and body["code"] == "too_many_pixels" and body["error"], body
