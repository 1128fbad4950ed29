"""Tests for marconi.imageio: every failure mode is an ImageError with its code; real images load as RGB."""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marconi.imageio import ImageError, image_info, load_image, make_thumbnail, to_rgb

DATA_DIR = Path(os.environ.get("MARCONI_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data"))
SAMPLES = DATA_DIR / "images" / "skimage-samples"
CALTECH = DATA_DIR / "images" / "caltech101"


@pytest.fixture(scope="module")
def samples() -> Path:
    """Return the scikit-image sample folder, or skip."""
    if not SAMPLES.is_dir():
        pytest.skip(f"shared sample images not found at {SAMPLES}; set MARCONI_DATA_DIR to the shared data folder")
    return SAMPLES


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    """Return ``img`` saved in ``fmt``."""
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """Return a syntactically valid PNG (signature, IHDR, IEND) that declares width x height and holds no pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def expect_error(code: str, data: bytes, **kwargs) -> ImageError:
    """Assert load_image raises ImageError(code) with no warning escaping, and return it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError) as info:
            load_image(data, **kwargs)
    assert info.value.code == code, str(info.value)
    assert str(info.value)
    return info.value


def test_empty():
    err = expect_error("empty", b"")
    assert "empty" in str(err)
    assert err.to_dict() == {"error": str(err), "status": 400, "code": "empty"}


@pytest.mark.parametrize("code, status", [("empty", 400), ("not_an_image", 400), ("truncated", 400),
                                          ("too_many_pixels", 413), ("unsupported_format", 415)])
def test_status_follows_the_code(code, status):
    from marconi.errors import BadRequest, MarconiError

    err = ImageError(code, "a message")
    assert isinstance(err, BadRequest) and isinstance(err, MarconiError)
    assert (err.code, err.status, err.message) == (code, status, "a message")
    assert err.to_dict() == {"error": "a message", "status": status, "code": code}
    with pytest.raises(ValueError):
        ImageError("no_such_code", "x")


def test_random_bytes_are_not_an_image():
    expect_error("not_an_image", random.Random(0).randbytes(4096))
    expect_error("not_an_image", b"<html><body>not found</body></html>")


def test_truncated_jpeg(samples):
    data = (samples / "rocket.jpg").read_bytes()
    err = expect_error("truncated", data[: len(data) // 2])
    assert "truncated" in str(err)


def test_truncated_png(samples):
    data = (samples / "chelsea.png").read_bytes()
    expect_error("truncated", data[: len(data) // 2])


def test_huge_declared_size_rejected_before_decoding():
    # 10^10 pixels: decoding would need 30 GB; the header alone must be enough to refuse it.
    err = expect_error("too_many_pixels", png_header(100_000, 100_000))
    assert "pixels" in str(err)


def test_size_between_our_limit_and_pillows_warning_threshold():
    # 10^8 pixels is above Pillow's DecompressionBombWarning threshold: the warning must not escape either.
    err = expect_error("too_many_pixels", png_header(10_000, 10_000))
    assert "10000x10000" in str(err)


def test_own_limit_applies_to_real_image(samples):
    data = (samples / "rocket.jpg").read_bytes()
    expect_error("too_many_pixels", data, max_pixels=640 * 427 - 1)
    assert load_image(data, max_pixels=640 * 427).size == (640, 427)


def test_unsupported_formats_are_named():
    tiny = Image.new("RGB", (16, 16), "red")
    err = expect_error("unsupported_format", encode(tiny, "ICO"))
    assert "ICO" in str(err)
    # EPS would need Ghostscript to decode: it must be refused from its header, never rendered.
    err = expect_error("unsupported_format", encode(tiny, "EPS"))
    assert "EPS" in str(err)


def test_pdf_is_not_an_image():
    expect_error("not_an_image", encode(Image.new("RGB", (16, 16)), "PDF"))


def test_allowed_formats_restricts(samples):
    data = (samples / "chelsea.png").read_bytes()
    err = expect_error("unsupported_format", data, allowed_formats=("JPEG",))
    assert "PNG" in str(err)


def test_corrupted_jpegs_raise_only_image_error(samples):
    data = bytearray((samples / "rocket.jpg").read_bytes())
    rng = random.Random(1)
    for _ in range(25):
        broken = bytearray(data)
        for _ in range(20):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        try:
            img = load_image(bytes(broken))
        except ImageError as exc:
            assert exc.code in ImageError.CODES
        else:
            assert img.mode == "RGB"


def test_all_sample_images_load_as_rgb(samples):
    for path in sorted(samples.glob("*.*")):
        if path.suffix.lower() not in (".png", ".jpg"):
            continue
        img = load_image(path.read_bytes())
        assert img.mode == "RGB", path.name
        assert img.size == Image.open(path).size


def test_caltech_grayscale_loads_as_rgb():
    path = CALTECH / "car_side" / "image_0001.jpg"  # all car_side images are grayscale
    if not path.is_file():
        pytest.skip(f"{path} not found; set MARCONI_DATA_DIR")
    assert Image.open(path).mode == "L"
    assert load_image(path.read_bytes()).mode == "RGB"


def test_modes_converted_to_rgb():
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red → white
    out = load_image(encode(rgba, "PNG"))
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)

    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    assert load_image(encode(pal, "PNG")).getpixel((0, 0)) == (0, 0, 255)
    assert load_image(encode(pal, "GIF", transparency=0)).getpixel((0, 0)) == (255, 255, 255)

    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    r, g, b = load_image(encode(cmyk, "JPEG")).getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60

    deep = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))  # 16-bit white
    out = load_image(encode(deep, "PNG"))
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)

    assert load_image(encode(Image.new("L", (8, 8), 77), "BMP")).getpixel((0, 0)) == (77, 77, 77)
    assert load_image(encode(Image.new("RGB", (8, 8), (1, 2, 3)), "WEBP", lossless=True)).getpixel((0, 0)) == (1, 2, 3)
    assert load_image(encode(Image.new("RGB", (8, 8), (1, 2, 3)), "TIFF")).getpixel((0, 0)) == (1, 2, 3)
    assert to_rgb(Image.new("1", (4, 4), 1)).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    data = encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    out = load_image(data)
    assert out.size == (20, 40)
    top, bottom = out.getpixel((10, 5)), out.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60, top  # the left (red) side is now on top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
    info = image_info(data)
    assert (info["width"], info["height"]) == (20, 40)


def test_draft_decodes_large_jpeg_smaller_but_not_below_target(samples):
    data = (samples / "retina.jpg").read_bytes()  # 1411 x 1411
    full = load_image(data)
    small = load_image(data, draft_size=(256, 256))
    assert full.size == (1411, 1411)
    assert 256 <= min(small.size) < 1411


def test_image_info(samples):
    data = (samples / "rocket.jpg").read_bytes()
    info = image_info(data)
    assert info == {
        "width": 640,
        "height": 427,
        "format": "JPEG",
        "mode": "RGB",
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    with pytest.raises(ImageError) as err:
        image_info(b"")
    assert err.value.code == "empty"


def test_make_thumbnail(samples):
    img = load_image((samples / "coffee.png").read_bytes())  # 600 x 400
    data = make_thumbnail(img, max_side=128)
    thumb = Image.open(io.BytesIO(data))
    assert thumb.format == "JPEG" and thumb.size == (128, 85)
    small = make_thumbnail(Image.new("RGBA", (10, 5)), max_side=256)  # never enlarged; alpha handled
    assert Image.open(io.BytesIO(small)).size == (10, 5)


# ------------------------------------------------------------------------------------ bounded decoding (#13)
def _reference(data: bytes) -> Image.Image:
    """How an image was decoded before #13: whole, EXIF-transposed (a copy), then RGB."""
    from PIL import ImageOps

    img = Image.open(io.BytesIO(data))
    img.load()
    return to_rgb(ImageOps.exif_transpose(img))


@pytest.mark.parametrize("name", ["astronaut.png", "coffee.png", "rocket.jpg", "retina.jpg", "motorcycle_left.png"])
def test_ordinary_images_decode_to_the_same_pixels(samples, name):
    """Stored vectors of ordinary photos do not change: the pixels given to the encoder are the same as before."""
    from marconi.imageio import sample_frames

    path = samples / name
    if not path.exists():
        pytest.skip(f"{name} not in the samples")
    data = path.read_bytes()
    want = np.asarray(_reference(data))
    assert np.array_equal(np.asarray(load_image(data)), want)
    assert np.array_equal(np.asarray(sample_frames(data)[0]), want)
    if not name.endswith(".jpg"):  # below the size where other formats are reduced, so no reduction happens
        assert np.array_equal(np.asarray(load_image(data, draft_size=(256, 256))), want)


def test_shrink_works_in_strips_and_matches_a_whole_reduce():
    from marconi.imageio import shrink

    rng = np.random.default_rng(1)
    rgba = Image.fromarray(rng.integers(0, 255, (1537, 2011, 4), dtype=np.uint8), "RGBA")
    sixteen = Image.fromarray(rng.integers(0, 65535, (1537, 2011), dtype=np.uint16))
    cases = {mode: rgba.convert(mode) for mode in ("RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I", "F")}
    cases["I;16"] = sixteen
    averaged_as = {"P": "RGB", "1": "L", "I;16": "I"}
    for mode, img in cases.items():
        for factor in (3, 7):
            got = shrink(img, factor)
            want = (img.convert(averaged_as[mode]) if mode in averaged_as else img).reduce(factor)
            assert (got.mode, got.size) == (want.mode, want.size), mode
            assert np.array_equal(np.asarray(got), np.asarray(want)), (mode, factor)
    assert shrink(rgba, 1) is rgba


def test_make_thumbnail_is_pillows_thumbnail_without_the_copy():
    rng = np.random.default_rng(2)
    for size in [(600, 400), (400, 600), (257, 256), (3000, 7), (7, 3000), (256, 256), (100, 50)]:
        img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        want = img.copy()
        want.thumbnail((256, 256), Image.Resampling.LANCZOS, reducing_gap=3.0)
        got = Image.open(io.BytesIO(make_thumbnail(img)))
        ref = Image.open(io.BytesIO(encode(want, "JPEG", quality=85, optimize=True)))
        assert got.size == want.size and np.array_equal(np.asarray(got), np.asarray(ref)), size


def test_a_large_png_is_reduced_and_one_past_the_budget_refused():
    from marconi.imageio import MAX_WHOLE_DECODE_PIXELS

    wide = encode(Image.new("RGBA", (5000, 4000), (200, 10, 10, 128)), "PNG", compress_level=1)  # 20 MP
    out = load_image(wide, reduce=10)
    assert out.size == (500, 400) and out.mode == "RGB"
    assert load_image(wide).size == (5000, 4000)  # no reduction asked: whole
    err = expect_error("image_too_large", png_header(8000, 6000), max_pixels=100_000_000)
    assert err.status == 413 and f"{MAX_WHOLE_DECODE_PIXELS:,}" in str(err)


def test_a_jpeg_past_the_budget_is_decoded_reduced_to_fit():
    data = encode(Image.new("RGB", (9000, 6000), (10, 200, 10)), "JPEG")  # 54 MP
    assert load_image(data, max_pixels=100_000_000).size == (4500, 3000)


def test_an_animated_frame_that_grows_the_canvas_is_refused():
    from marconi.imageio import sample_frames

    frames = [Image.new("P", (64, 64), 1), Image.new("P", (64, 64), 2)]
    for f in frames:
        f.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    data = bytearray(encode(frames[0], "GIF", save_all=True, append_images=frames[1:], optimize=False, disposal=1))
    at = data.index(b",", data.index(b",") + 1)
    while data[at + 5:at + 9] != struct.pack("<HH", 64, 64):
        at = data.index(b",", at + 1)
    data[at + 1:at + 5] = struct.pack("<HH", 3000, 0)  # the second frame reaches x = 3064: 196,096 pixels
    with pytest.raises(ImageError) as err:
        sample_frames(bytes(data), max_pixels=100_000)
    assert err.value.code == "too_many_pixels" and err.value.status == 413


_DECODE_PEAK = """
import sys
from marconi.image_search.query_photo import decode_query
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
data = open(sys.argv[1], "rb").read()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the high-water mark (VmHWM) starts again from here: importing peaks higher than decoding
before = status("VmRSS:")
photo = decode_query(data, 40_000_000, (256, 256))
print(photo.frames[0].size, (status("VmHWM:") - before) // 1024)
"""


@pytest.mark.parametrize("fmt, mode, size, bound_mib", [("JPEG", "RGB", (7744, 5164), 40),
                                                        ("PNG", "RGBA", (6000, 4000), 130)])
def test_decoding_a_large_query_photo_is_bounded(tmp_path, fmt, mode, size, bound_mib):
    """The query decode of a large photo, measured in a fresh process: a 40 MP JPEG is decoded at 1/8 (a few MiB);
    a 24 MP PNG (the most a format without a reduced decode may have) is decoded whole once (about 92 MiB) and
    shrunk in strips, never copied whole (before: 786 MiB for a 40 MP RGBA PNG)."""
    import subprocess
    import sys

    path = tmp_path / f"big.{fmt.lower()}"
    grain = np.random.default_rng(3).integers(0, 255, (size[1] // 10, size[0] // 10, len(mode)), dtype=np.uint8)
    Image.fromarray(grain, mode).resize(size).save(path, fmt, **({"compress_level": 1} if fmt == "PNG"
                                                                 else {"quality": 85}))
    run = subprocess.run([sys.executable, "-c", _DECODE_PEAK, str(path)], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr[-2000:]
    decoded, grown = run.stdout.split(")")[0] + ")", int(run.stdout.split(")")[1])
    print(f"\n{fmt} {size[0]}x{size[1]} query decode: {decoded}, peak grew {grown} MiB")
    assert grown < bound_mib
