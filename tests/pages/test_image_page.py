"""The image page (/images/<id>/page) with the Flask test client on real PostgreSQL: the picture, its metadata, its
tags with scores (each a search link), the images most like it, a 404 for unknown ids, and the page before any image
model serves."""

from __future__ import annotations

import hashlib
import io
from html.parser import HTMLParser
from pathlib import PurePosixPath
from urllib.parse import quote_plus

import pytest
from PIL import Image

VOID = {"img", "br", "meta", "link", "input", "hr", "source"}


class Doc(HTMLParser):
    """Every element of a page as (tag, attrs, text inside it)."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict, list[str]]] = []
        self._open: list[tuple[str, dict, list[str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        element = (tag, {k: v or "" for k, v in attrs}, [])
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        for _, _, text in self._open:
            text.append(data)

    def all(self, tag: str | None = None, cls: str | None = None, **want) -> list[tuple[dict, str]]:
        """(attrs, whitespace-normalised text) of each element matching tag, a class and exact attributes."""
        return [(a, " ".join("".join(t).split())) for name, a, t in self.elements
                if (tag is None or name == tag) and (cls is None or cls in a.get("class", "").split())
                and all(a.get(k) == v for k, v in want.items())]

    def one(self, tag: str | None = None, cls: str | None = None, **want) -> tuple[dict, str]:
        found = self.all(tag, cls, **want)
        assert len(found) == 1, f"expected one <{tag} .{cls} {want}>, found {len(found)}"
        return found[0]


def page_of(client, image_id: int) -> Doc:
    r = client.get(f"/images/{image_id}/page")
    assert r.status_code == 200, (r.status_code, r.data[:300])
    assert r.mimetype == "text/html"
    return Doc(r.get_data(as_text=True))


def _first_of(engine, label: str) -> tuple[int, dict]:
    """(id, metadata row) of the first stored image labelled ``label``."""
    from marconi.db.images import images_by_id, labels_by_id

    with engine.connect() as conn:
        image_id = min(i for i, lab in labels_by_id(conn).items() if lab == label)
        return image_id, images_by_id(conn, [image_id])[image_id]


def test_page_shows_image_metadata_tags_and_similar_images(client, images_engine):
    image_id, row = _first_of(images_engine, "dalmatian")
    doc = page_of(client, image_id)

    img, _ = doc.one("img", id="image-main")
    assert img["src"] == f"/images/{image_id}"  # a JPEG: the original file, not the 256-px thumbnail
    assert doc.one(id="image-label")[1] == "dalmatian"
    assert row["source_url"].startswith("caltech101/dalmatian/image_")
    assert doc.one("h1")[1] == PurePosixPath(row["source_url"]).stem.replace("_", " ")  # "image 0001"
    licence, text = doc.one("a", rel="noopener noreferrer license")
    assert text == "CC BY 4.0" and licence["href"] == "https://creativecommons.org/licenses/by/4.0/"
    assert "Caltech 101" in doc.one(id="image-meta")[1]

    # tags: the API's tags, best first, as chips with their scores, each a link to a words search
    api_tags = client.get(f"/api/images/{image_id}/tags").get_json()["tags"]
    assert "dog" in [t["tag"] for t in api_tags[:5]]  # the classifier sees a dog
    chips = doc.all("a", cls="tag-chip")
    assert [c[0]["href"] for c in chips] == [f"/search?q={quote_plus(t['tag'])}" for t in api_tags]
    assert chips[0][1] == f"{api_tags[0]['tag']} {round(api_tags[0]['score'] * 100)}%"
    assert all(c[1].endswith("%") for c in chips)

    # similar images: the API's answer to "more like this", each a thumbnail linking to its own page
    api_similar = client.get(f"/api/images/{image_id}/similar?k=12").get_json()["matches"]
    cards = doc.all("li", cls="match")
    ids = [int(a["data-id"]) for a, _ in cards]
    assert ids == [m["id"] for m in api_similar] and len(ids) == 12 and image_id not in ids
    links = [a["href"] for a, _ in doc.all("a", cls="thumb")]
    assert links == [f"/images/{i}/page" for i in ids]
    thumbs = [a["src"] for a, _ in doc.all("img", loading="lazy")]
    assert thumbs == [f"/images/{i}/thumbnail" for i in ids]
    assert sum(text.startswith("dalmatian") for _, text in cards) >= 8
    assert doc.all(id="not-encoded") == []

    # a neighbour's page links onwards the same way
    assert page_of(client, ids[0]).all("li", cls="match")


def test_search_page_knows_where_image_pages_are(client):
    r = client.get("/search")
    form = Doc(r.get_data(as_text=True)).one("form", id="search-form")[0]
    assert form["data-image-page"] == "/images/0/page"


@pytest.mark.parametrize("path", ["/images/999999999/page", "/images/0/page"])
def test_unknown_image_is_404(client, images_engine, path):
    r = client.get(path)
    assert r.status_code == 404
    assert "no image with id" in r.get_json()["error"]


def _gif() -> bytes:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ((200, 0, 0), (0, 0, 200))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _image(fmt: str, colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def unencoded_client(new_database, base_config, tmp_path_factory):
    """An app on a database with three imported images (JPEG, animated GIF, BMP) and no image model run."""
    from marconi import create_app
    from marconi.config import Config
    from marconi.db import make_engine
    from marconi.importers.images import import_images

    url = new_database()
    folder = tmp_path_factory.mktemp("unencoded") / "upload"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "Sleepy_cat.jpg").write_bytes(_image("JPEG", (10, 120, 30)))
    (folder / "cats" / "waving.gif").write_bytes(_gif())
    (folder / "cats" / "old.bmp").write_bytes(_image("BMP", (90, 90, 200)))
    eng = make_engine(Config(), url=url)
    counts = import_images(eng, folder, progress=False)
    assert counts["inserted"] == 3, counts
    from marconi.db.images import images_by_id, labels_by_id

    with eng.connect() as conn:
        rows = images_by_id(conn, list(labels_by_id(conn)))
    eng.dispose()
    app = create_app({"database_url": url, "home": str(base_config.home)})
    app.testing = True
    return app.test_client(), {r["format"]: i for i, r in rows.items()}


def test_page_without_a_serving_image_run(unencoded_client):
    client, ids = unencoded_client
    doc = page_of(client, ids["JPEG"])
    assert doc.one("img", id="image-main")[0]["src"] == f"/images/{ids['JPEG']}"
    assert doc.one("h1")[1] == "Sleepy cat"
    assert doc.one(id="image-label")[1] == "cats"
    _, notice = doc.one(id="not-encoded")
    assert "similar images and tags appear after marconi encode images" in notice
    assert doc.all("a", cls="tag-chip") == [] and doc.all("li", cls="match") == []
    assert doc.all(id="similar-heading") == []


def test_animated_gif_shows_the_original_and_bmp_its_thumbnail(unencoded_client):
    client, ids = unencoded_client
    gif = page_of(client, ids["GIF"]).one("img", id="image-main")[0]
    assert gif["src"] == f"/images/{ids['GIF']}"  # the original file, so it plays
    assert client.get(gif["src"]).mimetype == "image/gif"
    bmp = page_of(client, ids["BMP"]).one("img", id="image-main")[0]
    assert bmp["src"] == f"/images/{ids['BMP']}/thumbnail"


def test_image_imported_after_the_serving_run(new_database, base_config, image_sets, tmp_path_factory):
    """An image stored after `marconi encode images`: its page shows it and says it is not in the index yet."""
    from marconi import create_app
    from marconi.config import Config
    from marconi.db import make_engine
    from marconi.db.images import image_id_by_sha256
    from marconi.image_search.build import encode_images
    from marconi.importers.images import import_images

    url = new_database()
    eng = make_engine(Config(), url=url)
    import_images(eng, image_sets[0], progress=False)
    encode_images(eng, base_config.with_overrides(device="cpu", encoder="efficientnet-lite0"), progress=False)
    late = tmp_path_factory.mktemp("late") / "upload"
    (late / "new").mkdir(parents=True)
    (late / "new" / "late.png").write_bytes(_image("PNG", (250, 200, 0)))
    import_images(eng, late, progress=False)
    with eng.connect() as conn:
        late_id = image_id_by_sha256(conn, hashlib.sha256((late / "new" / "late.png").read_bytes()).hexdigest())
    eng.dispose()
    app = create_app({"database_url": url, "home": str(base_config.home)})
    app.testing = True
    doc = page_of(app.test_client(), late_id)
    assert doc.one("img", id="image-main")[0]["src"] == f"/images/{late_id}"
    assert doc.all(id="not-encoded") == [] and doc.all("a", cls="tag-chip") == []
    note = doc.one(id="similar-note")[1]
    assert note.startswith(f"Image {late_id} is not in the serving index yet"), note
    assert doc.all("li", cls="match") == []


def test_a_browser_gets_missing_pages_as_a_page_and_api_clients_as_json(client):
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = client.get("/images/999999999/page", headers=html)
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert b"no image with id 999999999" in page.data and b"Not found" in page.data
    unknown = client.get("/no/such/page", headers=html)
    assert unknown.status_code == 404 and unknown.mimetype == "text/html"
    api = client.get("/api/images/999999999", headers=html)  # the API answers JSON whatever the browser prefers
    assert api.status_code == 404 and api.get_json()["status"] == 404
    plain = client.get("/images/999999999/page")  # no Accept header: JSON, as before
    assert plain.status_code == 404 and plain.get_json()["status"] == 404
