"""Safe image decoding for uploads and imports.

Every failure is an :class:`ImageError`, a :class:`marconi.errors.BadRequest` whose HTTP status follows its
machine-readable ``code`` (400; 413 for too many pixels; 415 for an unsupported format). Nothing from PIL
(``OSError``, ``DecompressionBombError``/``Warning``, ``SyntaxError`` from a broken chunk, ...) escapes. The
declared size is checked before any pixel is decoded, and pixels are then fully decoded so truncated files are
caught here rather than later in a worker.

Notes:
- Truncation is only detected while ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is False (Pillow's default); this
  module never changes it.
- Formats that need an external program (EPS via Ghostscript) or that are not photos are rejected from the
  header alone; their pixels are never loaded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterable

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from marconi.config import Config
from marconi.errors import BadRequest

DEFAULT_MAX_PIXELS = Config.max_image_pixels
DEFAULT_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

_ORIENTATION_TAG = 0x0112
_TRANSPARENT_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


class ImageError(BadRequest):
    """An image that cannot be used; ``code`` is one of CODES, ``status`` follows it, the message is for humans."""

    CODES = ("empty", "not_an_image", "truncated", "too_many_pixels", "unsupported_format")
    STATUS = {"empty": 400, "not_an_image": 400, "truncated": 400, "too_many_pixels": 413, "unsupported_format": 415}

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


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    """Return (width, height) after applying the EXIF orientation, without decoding pixels."""
    width, height = img.size
    try:
        orientation = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # malformed EXIF is ignored
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allowed_formats: Iterable[str] = DEFAULT_FORMATS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode bytes into a fully loaded, EXIF-transposed RGB image, or raise ImageError.

    ``draft_size`` lets the JPEG decoder downscale by 1/2, 1/4 or 1/8 while decoding, keeping both sides at least
    that large (much faster for big photos when the result is resized anyway). The whole stream is still decoded,
    so truncation is still detected.
    """
    img = _open(data, allowed_formats)
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("not_an_image", "The image has no pixels.")
    if width * height > max_pixels:
        raise ImageError(
            "too_many_pixels",
            f"The image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}.",
        )
    if draft_size is not None and img.format == "JPEG":
        try:
            img.draft("RGB", draft_size)
        except Exception:  # draft is only an optimisation
            pass
    try:
        img.load()
    except MemoryError:
        raise ImageError("too_many_pixels", "The image is too large to decode in memory.") from None
    except Exception as exc:  # OSError, SyntaxError, EOFError, ValueError, struct.error ...
        raise ImageError("truncated", f"The image data is truncated or corrupt: {exc}") from None
    try:
        img = ImageOps.exif_transpose(img)
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
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F" and arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        elif arr.size and np.nanmax(arr) > 255:
            arr = arr * (255.0 / 65535.0)
        arr = np.nan_to_num(np.clip(arr, 0, 255))
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    try:
        return img.convert("RGB")
    except Exception as exc:  # e.g. LAB or exotic raw modes
        raise ImageError("unsupported_format", f"Colour mode {mode} is not supported ({exc}).") from None


def image_info(data: bytes, allowed_formats: Iterable[str] = DEFAULT_FORMATS) -> dict:
    """Return {width, height, format, mode, bytes, sha256} from the header alone (width/height EXIF-oriented)."""
    img = _open(data, allowed_formats)
    width, height = _oriented_size(img)
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
    """Return JPEG bytes of ``img`` shrunk (never enlarged) to fit in max_side x max_side."""
    thumb = to_rgb(img).copy()
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


MAX_FRAMES = 4  # frames sampled from an animated image (GIF, WebP, APNG) for its features


def sample_frames(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, n: int = MAX_FRAMES) -> list[Image.Image]:
    """Return up to ``n`` evenly spaced frames of an animated image as RGB images (one image for a still one).

    The first frame goes through :func:`load_image` (so every check applies); later frames are read by seeking the
    same file. A frame that cannot be read ends the sampling: what was read is kept.
    """
    first = load_image(data, max_pixels=max_pixels)
    with Image.open(io.BytesIO(data)) as img:
        count = getattr(img, "n_frames", 1) if getattr(img, "is_animated", False) else 1
        if count <= 1 or n <= 1:
            return [first]
        frames = [first]
        for index in sorted({round(i * (count - 1) / (n - 1)) for i in range(1, n)}):
            try:
                img.seek(index)
                frames.append(to_rgb(img.copy()))
            except (EOFError, OSError, ValueError):
                break
        return frames
