"""Region search (#12): ``box=x,y,w,h`` searches (or tags) only part of the photo, on a real database and encoder.

The collages are built here with Pillow from the held-out photos of images_engine's six classes, so a box around
one cell holds one photo the index has never seen.
"""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest
from PIL import Image, ImageOps

from marconi.api.openapi import response_schema

CELL = (320, 240)
COLLAGE = ["dalmatian", "Motorbikes", "cup", "sunflower"]  # row by row: top-left, top-right, bottom-left, bottom-right


def _png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _collage(photos) -> Image.Image:
    """A 2x2 collage: each photo fitted into its 320x240 cell, centred on grey."""
    canvas = Image.new("RGB", (2 * CELL[0], 2 * CELL[1]), (128, 128, 128))
    for i, path in enumerate(photos):
        img = ImageOps.contain(Image.open(path).convert("RGB"), CELL)
        canvas.paste(img, ((i % 2) * CELL[0] + (CELL[0] - img.width) // 2,
                           (i // 2) * CELL[1] + (CELL[1] - img.height) // 2))
    return canvas


def _cell(i: int) -> str:
    return f"{(i % 2) * CELL[0]},{(i // 2) * CELL[1]},{CELL[0]},{CELL[1]}"


@pytest.fixture(scope="module")
def collage(image_sets) -> bytes:
    """PNG bytes of a collage of one held-out photo of each class in COLLAGE."""
    return _png(_collage([sorted(image_sets[1].joinpath(c).glob("*.jpg"))[0] for c in COLLAGE]))


@pytest.fixture(scope="module")
def photo(image_sets) -> tuple[bytes, int, int]:
    """A held-out cup photo: its bytes and its decoded size."""
    path = sorted(image_sets[1].joinpath("cup").glob("*.jpg"))[0]
    with Image.open(path) as img:
        return path.read_bytes(), img.width, img.height


def _post(client, data: bytes, path: str = "/api/images/search", query: str = "", **form):
    return client.post(path + query, data={"image": (io.BytesIO(data), "q.png"), **form},
                       content_type="multipart/form-data")


def _labels(body: dict) -> list[str]:
    return [m["label"] for m in body["matches"]]


# --------------------------------------------------------------------------------------------- refused boxes
BAD_BOXES = [
    ("1,2,3", "four numbers"),
    ("1,2,3,4,5", "four numbers"),
    ("a,b,c,d", "four numbers"),
    ("10,10,50,x", "four numbers"),
    ("[10,10,50,50]", "four numbers"),
    ("١٠,٢٠,١٠٠,١٠٠", "four numbers"),  # Arabic-Indic digits: ASCII digits only
    ("nan,0,50,50", "finite"),
    ("0,0,inf,50", "finite"),
    ("0,0,0,50", "positive width and height"),
    ("0,0,50,-5", "positive width and height"),
    ("5000,0,50,50", "does not overlap"),
    ("-100,-100,50,50", "does not overlap"),
    ("0,0,10,10", "at least 16x16"),
    ("0,0,15.4,100", "at least 16x16"),
]


@pytest.mark.parametrize("path", ["/api/images/search", "/api/images/tags"])
@pytest.mark.parametrize("box, says", BAD_BOXES)
def test_bad_boxes_are_400_bad_box(client, images_engine, photo, path, box, says):
    data, width, height = photo
    for where in ("form", "query"):
        r = _post(client, data, path, box=box) if where == "form" else _post(client, data, path, f"?box={box}")
        body = r.get_json()
        assert r.status_code == 400, (where, body)
        assert body["code"] == "bad_box" and says in body["error"], (where, body)
        jsonschema.validate(body, response_schema(path, "post", 400))
    if "overlap" in says or "16x16" in says:
        assert f"{width}x{height}" in body["error"]  # the message gives the photo's size


def test_a_box_mostly_outside_is_clipped_and_refused_when_too_small(client, images_engine, photo):
    data, width, height = photo
    r = _post(client, data, box=f"{width - 10},0,200,200")  # 10 px wide once clipped
    assert r.status_code == 400 and r.get_json()["code"] == "bad_box"
    assert f"the box is 10x{min(200, height)} pixels" in r.get_json()["error"]


def test_an_empty_box_is_the_whole_photo(client, images_engine, photo):
    data, _, _ = photo
    whole, empty = _post(client, data).get_json(), _post(client, data, box="").get_json()
    assert "box" not in empty["query"] and [m["id"] for m in empty["matches"]] == [m["id"] for m in whole["matches"]]


# ---------------------------------------------------------------------------------------- what a box searches
def test_the_box_is_clipped_echoed_and_is_what_gets_searched(client, images_engine, photo):
    data, width, height = photo
    half = width // 2
    r = _post(client, data, box=f"-20.4,-10,{half + 20.4},{height + 50}")  # partly outside: clipped
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    jsonschema.validate(body, response_schema("/api/images/search", "post", 200))
    assert body["query"]["box"] == [0, 0, half, height]
    assert (body["query"]["width"], body["query"]["height"]) == (width, height)  # the photo as sent

    # The same as uploading the left half cut out by hand (PNG, so no new compression), and not the whole photo.
    left = Image.open(io.BytesIO(data)).convert("RGB").crop((0, 0, half, height))
    cut = _post(client, _png(left)).get_json()
    assert [(m["id"], m["similarity"]) for m in body["matches"]] == [(m["id"], m["similarity"]) for m in cut["matches"]]
    assert body["confidence"] == cut["confidence"]
    whole = _post(client, data).get_json()
    assert [m["similarity"] for m in whole["matches"]] != [m["similarity"] for m in body["matches"]]

    # Decimals round to whole pixels, edge by edge; the query string works as the form field does.
    r = _post(client, data, "/api/images/search", "?box=10.4,20.6,100.2,80.5")
    assert r.status_code == 200 and r.get_json()["query"]["box"] == [10, 21, 101, 80]


def test_a_box_around_a_photo_in_a_collage_finds_its_class(client, images_engine, collage):
    whole = _post(client, collage).get_json()
    top = whole["matches"][0]["label"]
    found_only_with_box = []
    for i, label in enumerate(COLLAGE):
        body = _post(client, collage, box=_cell(i)).get_json()
        assert body["query"]["box"] == [int(v) for v in _cell(i).split(",")]
        assert _labels(body)[0] == label, (label, _labels(body))
        # Among the box's 10 matches, the photo's class outnumbers what the whole collage gives it.
        assert _labels(body).count(label) > _labels(whole).count(label), (label, _labels(body), _labels(whole))
        if top != label:
            found_only_with_box.append(label)
    assert len(found_only_with_box) >= 3, (top, found_only_with_box)


def test_tags_of_a_box(client, images_engine, collage):
    whole = _post(client, collage, "/api/images/tags").get_json()
    dog = _post(client, collage, "/api/images/tags", box=_cell(0))
    assert dog.status_code == 200, dog.get_json()
    body = dog.get_json()
    jsonschema.validate(body, response_schema("/api/images/tags", "post", 200))
    assert body["query"]["box"] == [0, 0, *CELL] and body["query"]["width"] == 2 * CELL[0]
    dog_tags = [t["tag"] for t in body["tags"]][:5]
    motorbike = [t["tag"] for t in _post(client, collage, "/api/images/tags", box=_cell(1)).get_json()["tags"]][:5]
    print(f"\ntags: whole {[t['tag'] for t in whole['tags']][:5]}, dog cell {dog_tags}, motorbike cell {motorbike}")
    assert "dog" in dog_tags and {"dalmatian", "coach dog", "carriage dog"} & set(dog_tags), dog_tags
    bikes = {"moped", "minibike", "motorcycle", "motor scooter", "motor vehicle"}
    assert "dog" not in motorbike and bikes & set(motorbike), motorbike
    assert not bikes & {t["tag"] for t in whole["tags"][:5]}  # the whole collage's tags miss the motorbike


def test_every_frame_of_an_animated_gif_is_cropped(client, images_engine, collage, app):
    from marconi.imageio import sample_frames

    base = Image.open(io.BytesIO(collage)).convert("RGB")
    frames = [base, ImageOps.mirror(base), base]  # the mirror holds the sunflower where the cup was
    gif = _png(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    box = _cell(2)
    r = _post(client, gif, box=box)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["query"]["frames"] == 3 and body["query"]["box"] == [0, 240, 320, 240]

    x, y, w, h = (int(v) for v in box.split(","))
    decoded = sample_frames(gif)
    assert len(decoded) == 3
    searcher = app.extensions["marconi.image_searcher"]
    with images_engine.connect() as conn:
        every = searcher.search(conn, [f.crop((x, y, x + w, y + h)) for f in decoded], 10)
        first_only = searcher.search(conn, [decoded[0].crop((x, y, x + w, y + h)), *decoded[1:]], 10)
    assert [(m["id"], m["similarity"]) for m in body["matches"]] == [(m["id"], m["similarity"])
                                                                      for m in every["matches"]]
    assert [m["similarity"] for m in body["matches"]] != [m["similarity"] for m in first_only["matches"]]


# ----------------------------------------------------------------------------------------------- JSON bodies
class _Serve(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    files: dict = {}
    hits: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.hits.append(self.path)
        body = self.files.get(self.path, b"")
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def collage_url(collage):
    _Serve.files = {"/collage.png": collage}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Serve)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/collage.png"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def url_client(images_engine, trained_url, base_config):
    """An app that may fetch from 127.0.0.1 (as an operator would allow an intranet image host)."""
    from marconi import create_app

    app = create_app({"database_url": trained_url[0], "home": str(base_config.home),
                      "url_fetch_allow_networks": "127.0.0.1/32", "url_fetch_timeout": 5.0})
    app.testing = True
    return app.test_client()


def test_json_body_box_with_a_url(url_client, collage_url, collage):
    x, y, w, h = (int(v) for v in _cell(2).split(","))
    upload = _post(url_client, collage, box=_cell(2)).get_json()
    as_list = url_client.post("/api/images/search", json={"url": collage_url, "box": [x, y, w, h], "k": 5})
    assert as_list.status_code == 200, as_list.get_json()
    body = as_list.get_json()
    jsonschema.validate(body, response_schema("/api/images/search", "post", 200))
    assert body["query"]["box"] == [x, y, w, h] and body["query"]["url"] == collage_url
    assert _labels(body)[0] == "cup" and len(body["matches"]) == 5
    assert [m["id"] for m in body["matches"]] == [m["id"] for m in upload["matches"][:5]]
    as_text = url_client.post("/api/images/search", json={"url": collage_url, "box": _cell(2), "k": 5}).get_json()
    assert [m["id"] for m in as_text["matches"]] == [m["id"] for m in body["matches"]]
    whole = url_client.post("/api/images/search", json={"url": collage_url, "k": 5}).get_json()
    assert "box" not in whole["query"] and _labels(whole) != _labels(body)


@pytest.mark.parametrize("body", [
    {"box": [1, 2, 3]},
    {"box": [1, 2, "3", 4]},
    {"box": [True, 0, 100, 100]},
    {"box": {"x": 1}},
    {"box": "1,2,3"},
    {"box": [0, 0, 0, 100]},
])
def test_json_bad_boxes_are_refused_before_fetching(url_client, collage_url, body):
    before = len(_Serve.hits)
    r = url_client.post("/api/images/search", json={"url": collage_url, **body})
    assert r.status_code == 400 and r.get_json()["code"] == "bad_box", r.get_json()
    jsonschema.validate(r.get_json(), response_schema("/api/images/search", "post", 400))
    assert len(_Serve.hits) == before  # nothing was fetched


def test_json_box_refusals_after_fetching_and_with_words(url_client, collage_url):
    off = url_client.post("/api/images/search", json={"url": collage_url, "box": [700, 0, 50, 50]})
    assert off.status_code == 400 and off.get_json()["code"] == "bad_box"
    assert "640x480" in off.get_json()["error"]
    nan = url_client.post("/api/images/search", data=f'{{"url": "{collage_url}", "box": [NaN, 0, 50, 50]}}',
                          content_type="application/json")
    assert nan.status_code == 400 and nan.get_json()["code"] == "bad_box" and "finite" in nan.get_json()["error"]
    words = url_client.post("/api/images/search", json={"text": "a cup", "box": [0, 0, 100, 100]})
    assert words.status_code == 400 and words.get_json()["code"] == "bad_box" and "text" in words.get_json()["error"]


# ------------------------------------------------------------------------------------------------- evaluation
def test_make_collage_puts_the_query_where_its_box_says(image_sets):
    from marconi.evaluation.collage import CELL as EVAL_CELL
    from marconi.evaluation.collage import make_collage

    photos = [Image.open(sorted(image_sets[1].joinpath(c).glob("*.jpg"))[0]).convert("RGB") for c in COLLAGE]
    for cell in range(4):
        canvas, (x, y, w, h) = make_collage(photos[0], photos[1:], cell)
        assert canvas.size == (2 * EVAL_CELL[0], 2 * EVAL_CELL[1])
        assert (x // EVAL_CELL[0], y // EVAL_CELL[1]) == (cell % 2, cell // 2)
        assert max(w / EVAL_CELL[0], h / EVAL_CELL[1]) == pytest.approx(1, abs=0.01)  # fitted to its cell
        fitted = ImageOps.contain(photos[0], EVAL_CELL, Image.Resampling.LANCZOS)
        assert canvas.crop((x, y, x + w, y + h)).tobytes() == fitted.tobytes()


def test_eval_images_collage_on_a_small_tree(images_engine, image_sets, tmp_path):
    from click.testing import CliRunner

    from marconi.cli import main

    url = images_engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg2://", "postgresql://")
    args = ["--database-url", url, "eval", "images", "--queries", str(image_sets[1]), "--collage", "--sample", "12"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # the progress bar goes to stderr
    print(f"\neval images --collage (12 of the 30 held-out queries): {out}")
    assert out["queries"] == 12 and out["skipped"] == 0 and out["seed"] == 0
    assert out["plain"]["P@1"] >= 0.75
    assert out["collage_box"]["P@1"] >= out["plain"]["P@1"] - 0.1  # the box gets back what the collage lost
    assert out["collage"]["P@1"] <= out["collage_box"]["P@1"] - 0.25
    assert out["collage_box_minus_plain"]["P@1"] == pytest.approx(out["collage_box"]["P@1"] - out["plain"]["P@1"],
                                                                  abs=1e-4)
    again = CliRunner().invoke(main, args)
    assert json.loads(again.stdout) == out  # seeded: the same collages again

    few = tmp_path / "three-labels"
    for label in ("cup", "watch", "sunflower"):
        (few / label).mkdir(parents=True)
        for f in sorted(image_sets[1].joinpath(label).glob("*.jpg"))[:2]:
            (few / label / f.name).write_bytes(f.read_bytes())
    short = CliRunner().invoke(main, ["--database-url", url, "eval", "images", "--queries", str(few), "--collage"])
    assert short.exit_code == 1 and "at least 4 labels" in short.output
    both = CliRunner().invoke(main, ["--database-url", url, "eval", "images", "--queries", str(few), "--collage",
                                     "--metrics", "cosine"])
    assert both.exit_code == 2 and "--collage" in both.output
