"""Region search: only the part of a query photo inside a box is encoded (an item inside a bigger photo).

A box is ``x, y, w, h`` in pixels of the photo at its full size (after its EXIF orientation), as the user sees it,
as parsed by ``marconi.image_search.request.parse_box``. :func:`crop_frames` clips it to the photo and crops every
sampled frame of an animated image the same way; a large photo may have been decoded reduced
(:mod:`marconi.image_search.query_photo`), and the box is then scaled into the reduced frames, so the same part of
the photo is searched. The searches (``ImageSearcher.search_bytes``), the tagging view and the collage evaluation
(``marconi.evaluation.collage``) all crop through it, so all of them crop alike.
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


def crop_frames(frames: list[Image.Image], box: tuple[float, float, float, float],
                full_size: tuple[int, int] | None = None) -> tuple[list[Image.Image], list]:
    """Return the frames cropped to ``box`` and the box used, ``[x, y, w, h]``, clipped to the photo.

    ``full_size`` is the photo's (width, height) as the user sees it, when the frames were decoded smaller (default:
    the first frame's size). The box is clipped in those pixels, as the user drew it, and then scaled into each frame.
    """
    width, height = full_size or frames[0].size
    x, y, w, h = clip_box(box, width, height)
    return [f.crop(_scaled((x, y, x + w, y + h), f.width / width, f.height / height)) for f in frames], [x, y, w, h]


def _scaled(edges: tuple[int, int, int, int], sx: float, sy: float) -> tuple[int, int, int, int]:
    """Box edges (left, top, right, bottom) in whole pixels of an image ``sx`` x ``sy`` times the photo's size.

    Identity at scale 1; otherwise each edge rounds to the nearest pixel, keeping at least one pixel a side.
    """
    if sx == 1 and sy == 1:
        return edges
    left, top, right, bottom = (math.floor(v * s + 0.5) for v, s in zip(edges, (sx, sy, sx, sy), strict=True))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def _shown(box) -> str:
    return ",".join(f"{v:g}" for v in box)
