"""A query photo decoded no larger than its encoder needs, so a 40-megapixel upload costs a worker megabytes.

An encoder looks at 224-260 pixels a side, and a box at the part inside it. So a photo is decoded up to as many
times smaller per side as its searched part (the box, else the whole photo) is larger than the encoder's input
(``Preprocess.draft_size``): a JPEG inside its decoder (1/2, 1/4, 1/8), other formats shrunk right after decoding
(:mod:`marconi.imageio`). The box stays in pixels of the photo at its full size, as the user drew it, and so does
the answer's ``query``: :func:`marconi.image_search.region.crop_frames` scales it into the reduced frames.

The reduction is the one batch encoding uses for stored images (``marconi.encoders.batch``), so an uploaded copy
of a stored JPEG is encoded from the same pixels as the stored one.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from marconi.image_search.region import clip_box, crop_frames
from marconi.imageio import open_image, oriented_size, sample_frames

Box = tuple[float, float, float, float]  # x, y, w, h in pixels of the photo at its full size


@dataclass(frozen=True)
class QueryPhoto:
    """What is encoded for a query (the box's part of each sampled frame) and the ``query`` the answer shows."""

    frames: list[Image.Image]
    query: dict  # width, height (the photo as the user sees it), frames when animated, the box used (clipped)


def reduction(part: tuple[int, int], need: tuple[int, int]) -> int:
    """How many times smaller per side a ``part`` (w, h) may be decoded and still be ``need`` (w, h) or larger."""
    return max(1, min(part[0] // max(1, need[0]), part[1] // max(1, need[1])))


def _as_decoded(size: tuple[int, int], decoded: tuple[int, int]) -> tuple[int, int]:
    """The photo's full size turned as its decoded frame is: the header's orientation, unless the frame came out
    turned the other way (an EXIF chunk after a PNG's pixels is found only once they are decoded)."""
    width, height = size
    aspect = decoded[0] / decoded[1]
    return (height, width) if abs(aspect - height / width) < abs(aspect - width / height) else (width, height)


def decode_query(data: bytes, max_pixels: int, need: tuple[int, int], box: Box | None = None) -> QueryPhoto:
    """Decode an uploaded (or fetched) photo for a search or tagging query; ImageError or BadBox when it cannot be.

    ``need``: the encoder's smallest useful input, (w, h) (``Preprocess.draft_size``). The box is checked against
    the photo's size from its header, before any pixel is decoded.
    """
    with open_image(data, max_pixels) as header:
        width, height = oriented_size(header, header_only=True)  # a PNG's pixels are not decoded twice
    clipped = clip_box(box, width, height) if box is not None else None
    frames = sample_frames(data, max_pixels=max_pixels, reduce=reduction(clipped[2:] if clipped else
                                                                           (width, height), need))
    width, height = _as_decoded((width, height), frames[0].size)
    query = {"width": width, "height": height} | ({"frames": len(frames)} if len(frames) > 1 else {})
    if box is not None:
        frames, query["box"] = crop_frames(frames, box, (width, height))
    return QueryPhoto(frames, query)
