"""Safe image decoding for uploads and imports.

Every failure is an :class:`ImageError`, a :class:`marconi.errors.BadRequest` whose HTTP status follows its
machine-readable ``code`` (400; 413 for too many pixels or too large a decode; 415 for an unsupported format).
Nothing from PIL (``OSError``, ``DecompressionBombError``/``Warning``, ``SyntaxError`` from a broken chunk, ...)
escapes. The declared size is checked before any pixel is decoded, and pixels are then fully decoded so truncated
files are caught here rather than later in a worker.

Memory is bounded by decoding no more than the caller needs: ``reduce`` (or ``draft_size``) says how many times
smaller per side the result may be. A JPEG is then decoded reduced (1/2, 1/4, 1/8, inside the decoder); other
formats have no reduced decode, so they are decoded whole (at most :data:`MAX_WHOLE_DECODE_PIXELS`, larger ones
are refused with ``image_too_large``) and shrunk right away with ``Image.reduce`` when large, before any copy is made.

Notes:
- Truncation is only detected while ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is False (Pillow's default); this
  module never changes it.
- Formats that need an external program (EPS via Ghostscript) or that are not photos are rejected from the
  header alone; their pixels are never loaded.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from collections.abc import Iterable

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from marconi.config import Config
from marconi.errors import BadRequest

DEFAULT_MAX_PIXELS = Config.max_image_pixels
DEFAULT_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

MAX_DECODED_PIXELS = 40_000_000
"""Pixels one JPEG decode may produce (Pillow keeps most modes at 4 bytes a pixel, so 160 MB); a larger JPEG is
decoded reduced to fit."""
MAX_WHOLE_DECODE_PIXELS = 24_000_000
"""Pixels of an image in a format without a reduced decode (PNG, WebP, TIFF, GIF, BMP), which is decoded whole;
larger ones are refused with ``image_too_large``. A served worker with every model loaded (photo, text and word
search) holds about 870 MiB; a 40 MP PNG took it to 1,027 MiB at its peak, 24 MP keeps it under 1 GiB."""
REDUCE_ABOVE_PIXELS = 16_000_000
"""A decoded non-JPEG larger than this is shrunk by the caller's ``reduce`` before anything else copies it. Smaller
ones are left whole, so the vectors of ordinary photos stay exactly those already stored (a box filter before the
encoder's resize changes them slightly)."""
_JPEG_SCALES = (8, 4, 2, 1)  # what the JPEG decoder can shrink by while decoding
_STRIP_PIXELS = 1_000_000  # source pixels shrunk at a time (whole rows of blocks)
_REDUCIBLE_AS = {"1": "L", "P": "RGB", "PA": "RGBA", "I;16": "I", "I;16L": "I", "I;16B": "I", "I;16N": "I"}
"""Modes that ``Image.reduce`` cannot average (palette indices, bits, 16-bit), and the mode to average them in."""

_ORIENTATION_TAG = 0x0112
_TRANSPARENT_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


class ImageError(BadRequest):
    """An image that cannot be used; ``code`` is one of CODES, ``status`` follows it, the message is for humans."""

    CODES = ("empty", "not_an_image", "truncated", "too_many_pixels", "image_too_large", "unsupported_format")
    STATUS = {"empty": 400, "not_an_image": 400, "truncated": 400, "too_many_pixels": 413, "image_too_large": 413,
              "unsupported_format": 415}

    def __init__(self, code: str, message: str):
        """Create the error with a machine-readable code (its HTTP status follows) and a human message."""
        if code not in self.CODES:
            raise ValueError(f"unknown ImageError code {code!r}")
        super().__init__(message, code=code, status=self.STATUS[code])


def _open(data: bytes, allowed_formats: Iterable[str]) -> Image.Image:
    """Open (header only) with only the allowed decoders; raise ImageError otherwise."""
    if not data:
        raise ImageError("empty", "The image is empty (0 bytes).")
    allowed = tuple(f.upper() for f in allowed_formats)
    with warnings.catch_warnings():
        # We apply our own pixel limit; PIL's warning would only be noise (or escape to the caller).
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=allowed)
        except Image.DecompressionBombError as exc:
            raise ImageError("too_many_pixels", f"The image declares too many pixels ({exc}).") from None
        except UnidentifiedImageError:
            pass
        except Exception as exc:  # a plugin choking on a broken header
            raise ImageError("not_an_image", f"The data is not a readable image ({type(exc).__name__}).") from None
        # Not one of the allowed formats: say which format it is when PIL knows it (header only, never loaded).
        try:
            other = Image.open(io.BytesIO(data))
            name = other.format
            other.close()
        except Image.DecompressionBombError:
            name = None
        except Exception:
            name = None
    if name:
        raise ImageError(
            "unsupported_format",
            f"{name} images are not accepted; use one of {', '.join(allowed)}.",
        )
    raise ImageError("not_an_image", f"The data is not a recognised image ({', '.join(allowed)} are accepted).")


def oriented_size(img: Image.Image, header_only: bool = False) -> tuple[int, int]:
    """Return (width, height) of an opened image after its EXIF orientation.

    Pillow decodes a whole PNG to look for an EXIF chunk after its pixels; ``header_only`` reads only the EXIF
    found before them (a late chunk then shows only once the pixels are decoded, as :func:`finish` applies it).
    """
    width, height = img.size
    try:
        exif = Image.Image.getexif(img) if header_only else img.getexif()
        orientation = exif.get(_ORIENTATION_TAG, 1)
    except Exception:  # malformed EXIF is ignored
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
               allowed_formats: Iterable[str] = DEFAULT_FORMATS) -> Image.Image:
    """Open ``data`` (header only) and check its declared size against ``max_pixels``; raise ImageError otherwise."""
    img = _open(data, allowed_formats)
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("not_an_image", "The image has no pixels.")
    if width * height > max_pixels:
        raise ImageError(
            "too_many_pixels",
            f"The image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}.",
        )
    return img


def load_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allowed_formats: Iterable[str] = DEFAULT_FORMATS,
    draft_size: tuple[int, int] | None = None,
    reduce: int = 1,
) -> Image.Image:
    """Decode bytes into a fully loaded, EXIF-transposed RGB image, or raise ImageError.

    ``draft_size`` lets the JPEG decoder downscale by 1/2, 1/4 or 1/8 while decoding, keeping both sides at least
    that large (much faster for big photos when the result is resized anyway); ``reduce`` says the same as a
    factor (the result may be up to that many times smaller per side). The whole stream is still decoded, so
    truncation is still detected. See the module's notes for how other formats are bounded.
    """
    img = open_image(data, max_pixels, allowed_formats)
    if draft_size is not None:
        reduce = max(reduce, min(img.width // max(1, draft_size[0]), img.height // max(1, draft_size[1])))
    return finish(decode(img, reduce))


def _jpeg_scale(width: int, height: int, reduce: int) -> int:
    """The JPEG decoder's scale for a ``reduce`` wish, raised until the result fits in MAX_DECODED_PIXELS."""
    wished = next(s for s in _JPEG_SCALES if s <= max(1, reduce))
    fitting = [s for s in _JPEG_SCALES if -(-width // s) * -(-height // s) <= MAX_DECODED_PIXELS]
    if not fitting:
        raise ImageError("image_too_large", f"The JPEG is {width}x{height} pixels: even decoded at 1/8 it is more "
                                            f"than {MAX_DECODED_PIXELS:,} pixels.")
    return max(wished, min(fitting))


def decode(img: Image.Image, reduce: int = 1) -> Image.Image:
    """Load the pixels of an opened image, up to ``reduce`` times smaller per side; ImageError when it cannot.

    The result is in the file's mode and orientation (see :func:`finish`). A JPEG is shrunk by its decoder (never
    more than ``reduce``, more only to fit MAX_DECODED_PIXELS); another format larger than REDUCE_ABOVE_PIXELS is
    loaded whole and then shrunk with ``Image.reduce``, the whole one dropped at once.
    """
    width, height = img.size
    if img.format == "JPEG":
        scale = _jpeg_scale(width, height, reduce)
        try:
            img.draft("RGB", (width // scale, height // scale))
        except Exception:  # draft is only an optimisation
            pass
    elif width * height > MAX_WHOLE_DECODE_PIXELS:
        raise ImageError(
            "image_too_large",
            f"The {img.format} image is {width}x{height} = {width * height:,} pixels; {img.format} images are "
            f"decoded whole, so they may have at most {MAX_WHOLE_DECODE_PIXELS:,} (send a smaller one, or a JPEG).",
        )
    _load(img)
    if img.format != "JPEG" and reduce > 1 and width * height > REDUCE_ABOVE_PIXELS:
        img = shrink(img, reduce)
    return img


def _load(img: Image.Image) -> None:
    """``img.load()`` with every failure turned into an ImageError."""
    try:
        img.load()
    except MemoryError:
        raise ImageError("too_many_pixels", "The image is too large to decode in memory.") from None
    except ImageError:
        raise
    except Exception as exc:  # OSError, SyntaxError, EOFError, ValueError, struct.error ...
        raise ImageError("truncated", f"The image data is truncated or corrupt: {exc}") from None


def shrink(img: Image.Image, factor: int) -> Image.Image:
    """Return a loaded image ``factor`` times smaller per side (block averages, as ``Image.reduce``), or the image
    itself for a factor of 1.

    It is reduced in strips of whole blocks, so the copies that ``reduce`` makes (transparent pixels premultiplied,
    palette indices and 16-bit values converted to averageable colours) are a strip's size, not the image's.
    """
    if factor <= 1:
        return img
    mode = "RGBA" if img.mode == "P" and "transparency" in img.info else _REDUCIBLE_AS.get(img.mode)
    width, height = img.size
    rows = factor * max(1, _STRIP_PIXELS // (width * factor))
    out = None
    for top in range(0, height, rows):
        strip = img.crop((0, top, width, min(height, top + rows)))
        part = (strip.convert(mode) if mode else strip).reduce(factor)
        if out is None:
            out = Image.new(part.mode, (-(-width // factor), -(-height // factor)))
        out.paste(part, (0, top // factor))
    return out


def finish(img: Image.Image) -> Image.Image:
    """Return a loaded image EXIF-transposed (in place: no copy when it is not rotated) and in 8-bit RGB."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # a malformed orientation tag is ignored, the pixels are fine
        pass
    return to_rgb(img)


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """Convert CMYK to RGB through its embedded ICC profile when there is one."""
    icc = img.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # fall back to PIL's naive conversion
            pass
    return img.convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Return an 8-bit RGB version of ``img`` (transparency composited on white, 16-bit scaled, CMYK converted)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in _TRANSPARENT_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode.startswith("I") or mode == "F":
        # One float64 copy, scaled and clipped in place (a 16-bit photo would otherwise need four of them).
        arr = np.array(img, dtype=np.float64)
        if mode == "F" and arr.size and np.nanmax(arr) <= 1.0:
            arr *= 255.0
        elif arr.size and np.nanmax(arr) > 255:
            arr *= 255.0 / 65535.0
        np.nan_to_num(np.clip(arr, 0, 255, out=arr), copy=False)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    try:
        return img.convert("RGB")
    except Exception as exc:  # e.g. LAB or exotic raw modes
        raise ImageError("unsupported_format", f"Colour mode {mode} is not supported ({exc}).") from None


def image_info(data: bytes, allowed_formats: Iterable[str] = DEFAULT_FORMATS) -> dict:
    """Return {width, height, format, mode, bytes, sha256} from the header alone (width/height EXIF-oriented)."""
    img = _open(data, allowed_formats)
    width, height = oriented_size(img)
    info = {
        "width": width,
        "height": height,
        "format": img.format,
        "mode": img.mode,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    img.close()
    return info


def make_thumbnail(img: Image.Image, max_side: int = 256, quality: int = 85) -> bytes:
    """Return JPEG bytes of ``img`` shrunk (never enlarged) to fit in max_side x max_side.

    The same pixels as ``Image.thumbnail``, without first copying the whole image (which ``thumbnail``, working in
    place, would need to leave ``img`` as it is).
    """
    thumb = to_rgb(img)
    size = _fitted(thumb.size, max_side)
    if size != thumb.size:
        thumb = thumb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size ``Image.thumbnail((max_side, max_side))`` gives an image of ``size`` (its aspect rounding)."""
    width, height = size
    if max_side >= width and max_side >= height:
        return size
    aspect = width / height

    def rounded(number: float, key) -> int:
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    if 1 >= aspect:
        return rounded(max_side * aspect, key=lambda n: abs(aspect - n / max_side)), max_side
    return max_side, rounded(max_side / aspect, key=lambda n: 0 if n == 0 else abs(aspect - max_side / n))


MAX_FRAMES = 4  # frames sampled from an animated image (GIF, WebP, APNG) for its features
MAX_ANIMATION_PIXELS = 200_000_000
"""Pixels decoded to sample an animated image: reaching a frame decodes every frame before it, so frames are
sampled among the first ``MAX_ANIMATION_PIXELS // (width * height)`` only (all of them for ordinary animations)."""
_FRAME_ERRORS = (EOFError, OSError, ValueError, SyntaxError)  # a frame that cannot be read


def frame_count(img: Image.Image) -> int:
    """How many frames an opened image holds (1 for a still one), from its headers (no frame is decoded)."""
    try:
        return int(getattr(img, "n_frames", 1)) if getattr(img, "is_animated", False) else 1
    except (*_FRAME_ERRORS, Image.DecompressionBombError):  # a broken later frame: the first one is still an image
        return 1


def sample_frames(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, n: int = MAX_FRAMES,
                  reduce: int = 1) -> list[Image.Image]:
    """Return up to ``n`` evenly spaced frames of an animated image as RGB images (one image for a still one).

    The first frame goes through :func:`load_image` (so every check applies, and ``reduce`` as there); later frames
    are read by seeking the same file, each shrunk as the first one was and converted before the next is decoded,
    so at most one full-size frame is held at a time. A frame that grows the canvas beyond ``max_pixels`` (a GIF
    frame may lie outside its screen) is refused as the first one would be; a frame that cannot be read ends the
    sampling: what was read is kept.
    """
    first = load_image(data, max_pixels=max_pixels, reduce=reduce)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _open(data, DEFAULT_FORMATS) as img:
            count = min(frame_count(img), max(1, MAX_ANIMATION_PIXELS // (img.width * img.height)))
            if count <= 1 or n <= 1:
                return [first]
            frames = [first]
            try:
                for index in sorted({round(i * (count - 1) / (n - 1)) for i in range(1, n)}):
                    while img.tell() < index:  # frame by frame, so every canvas size is checked before it is loaded
                        _next_frame(img, max_pixels)
                    frames.append(_frame(img, reduce))
            except _FRAME_ERRORS:
                pass
            return frames


def _next_frame(img: Image.Image, max_pixels: int) -> None:
    """Seek an animated image to its next frame; ImageError (413) when that frame grows the canvas too large."""
    try:
        img.seek(img.tell() + 1)
    except Image.DecompressionBombError as exc:
        raise ImageError("too_many_pixels", f"A frame of the animation declares too many pixels ({exc}).") from None
    if img.width * img.height > max_pixels:
        raise ImageError("too_many_pixels", f"A frame of the animation grows it to {img.width}x{img.height} = "
                                            f"{img.width * img.height:,} pixels; the limit is {max_pixels:,}.")


def _frame(img: Image.Image, reduce: int) -> Image.Image:
    """The current frame of an animated image as a new RGB image, shrunk by ``reduce`` when it is large (Pillow's
    own errors pass: a frame that cannot be read ends the sampling)."""
    img.load()
    large = reduce > 1 and img.width * img.height > REDUCE_ABOVE_PIXELS
    return to_rgb(shrink(img, reduce) if large else img.copy())
