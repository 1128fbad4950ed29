"""Region search: only the part of a query photo inside a box is encoded (an item inside a bigger photo).

A box is ``x, y, w, h`` in pixels of the photo as decoded (after its EXIF orientation), as parsed by
``marconi.image_search.request.parse_box``. :func:`crop_frames` clips it to the photo and crops every sampled frame of
an animated image the same way; the searches (``ImageSearcher.search_bytes``) and the tagging view call it, and so
does the collage evaluation
(``marconi.evaluation.collage``), so all of them crop alike.
"""

from __future__ import annotations

import math

from PIL import Image

from marconi.image_search.request import BadBox

MIN_SIDE = 16  # pixels: a smaller box (after clipping) holds too little to search for


def clip_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Return ``box`` clipped to a ``width`` x ``height`` photo, in whole pixels (edges rounded to the nearest).

    Raises BadBox when the box does not overlap the photo, or when what is left is smaller than MIN_SIDE pixels on
    either side.
    """
    x, y, w, h = box
    left, top = max(0.0, x), max(0.0, y)
    right, bottom = min(float(width), x + w), min(float(height), y + h)
    if right <= left or bottom <= top:
        raise BadBox(f"the box {_shown(box)} does not overlap the photo, which is {width}x{height} pixels "
                     "(x,y is the top-left corner, from 0,0)")
    left, top, right, bottom = (math.floor(v + 0.5) for v in (left, top, right, bottom))
    if right - left < MIN_SIDE or bottom - top < MIN_SIDE:
        raise BadBox(f"the box is {right - left}x{bottom - top} pixels on the photo ({width}x{height}); draw one at "
                     f"least {MIN_SIDE}x{MIN_SIDE}")
    return left, top, right - left, bottom - top


def crop_frames(frames: list[Image.Image], box: tuple[float, float, float, float]) -> tuple[list[Image.Image], list]:
    """Return the frames cropped to ``box`` (clipped to the first frame) and the box used, ``[x, y, w, h]``."""
    x, y, w, h = clip_box(box, frames[0].width, frames[0].height)
    return [f.crop((x, y, x + w, y + h)) for f in frames], [x, y, w, h]


def _shown(box) -> str:
    return ",".join(f"{v:g}" for v in box)
