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
