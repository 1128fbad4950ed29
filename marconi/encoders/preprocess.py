"""Image → model input: a small picklable :class:`Preprocess` (decode workers run it; it never holds the model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from marconi.imageio import to_rgb

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # Keras/Caffe VGG16: BGR order, 0-255 pixels, mean only
IMAGENET_MEAN_255 = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # torchvision: RGB, (x/255 - mean) / std
IMAGENET_STD_255 = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def upright_rgb(img: Image.Image) -> Image.Image:
    """The photo turned as its EXIF orientation says (left as it is when that tag is malformed), in RGB."""
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF: keep the pixels as they are
        pass
    return to_rgb(img)


@dataclass(frozen=True)
class Preprocess:
    """Picklable image → tensor transform: RGB, resize, centre crop, then normalise as the weights expect.

    ``resize``: shorter side scaled to this before a centre ``size`` crop; ``None`` squashes the whole image to
    ``size`` x ``size``. ``mean``/``std`` are in 0-255 pixel units and in the model's channel order (BGR when
    ``bgr``).
    """

    size: int = 224
    resize: int | None = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN_255
    std: tuple[float, float, float] = IMAGENET_STD_255
    bgr: bool = False

    @property
    def draft_size(self) -> tuple[int, int]:
        """Smallest (w, h) the decoder may shrink a JPEG to without changing the result much."""
        side = self.resize or self.size
        return (side, side)

    def prepare(self, img: Image.Image) -> np.ndarray:
        """Return uint8 RGB pixels, shape (3, size, size): EXIF-transposed, RGB, resized and cropped."""
        return self.geometry(upright_rgb(img))

    def geometry(self, img: Image.Image) -> np.ndarray:
        """Return uint8 pixels (3, size, size) of an already upright RGB image: resized and cropped."""
        width, height = img.size
        if self.resize is None:
            img = img.resize((self.size, self.size), Image.Resampling.BILINEAR)
        else:
            # Same as "shorter side to `resize`, then centre crop `size`", but resampling only the source box that
            # the crop covers: cheaper, and bounded for extreme aspect ratios (a 40000x1 strip stays small).
            side = min(width, height) * self.size / self.resize
            left, top = (width - side) / 2, (height - side) / 2
            box = (left, top, left + side, top + side)
            img = img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return float32 model input from uint8 RGB pixels (CxHxW or NxCxHxW) on any device."""
        x = pixels.float()
        if self.bgr:
            x = x.flip(-3)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """Return the CPU float32 CxHxW tensor the model expects for ``img``."""
        return self.normalize(torch.from_numpy(self.prepare(img)))

    def describe(self) -> dict:
        """Return a JSON-able description of the steps."""
        if self.resize is None:
            geometry = f"resize whole image to {self.size}x{self.size} (bilinear)"
        else:
            geometry = f"resize shorter side to {self.resize} (bilinear), centre crop {self.size}x{self.size}"
        if self.std == (128.0, 128.0, 128.0) and self.mean == (127.0, 127.0, 127.0):
            norm = "(x - 127) / 128 on 0-255 pixels"
        elif self.std == (1.0, 1.0, 1.0):
            norm = f"x - mean, mean={list(self.mean)} on 0-255 pixels (Caffe style, no scaling)"
        else:
            mean = [round(m / 255, 4) for m in self.mean]
            std = [round(s / 255, 4) for s in self.std]
            norm = f"(x / 255 - mean) / std, mean={mean}, std={std}"
        return {
            "input_size": [3, self.size, self.size],
            "colour": "BGR" if self.bgr else "RGB",
            "geometry": geometry,
            "normalisation": norm,
            "mean_255": list(self.mean),
            "std_255": list(self.std),
        }


@dataclass(frozen=True)
class MultiView:
    """Several geometries of one photo for one network, packed as one input so that decode workers, batches and
    the device handle them as they handle one view.

    ``prepare`` returns uint8 pixels (3·V, S, S), S the largest view's size: view i's 3 channels, centred on an
    S x S canvas (zeros around a smaller view). The model takes each view back out with :meth:`split` and pools
    the views' features (:class:`marconi.encoders.efficientnet.MultiViewPooled`). ``mean``/``std`` repeat each
    view's per channel, so :meth:`normalize` and the encoder's on-device normalisation work unchanged.
    """

    views: tuple[Preprocess, ...]

    def __post_init__(self):
        """Refuse what cannot be packed: no view, a view in BGR order (the channels would be flipped across views)."""
        if not self.views or any(v.bgr for v in self.views):
            raise ValueError("MultiView needs at least one view, all in RGB order")

    @property
    def size(self) -> int:
        """Side of the packed canvas: the largest view's."""
        return max(v.size for v in self.views)

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean of the packed input (each view's three, in order)."""
        return tuple(m for v in self.views for m in v.mean)

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation of the packed input."""
        return tuple(s for v in self.views for s in v.std)

    bgr = False

    @property
    def draft_size(self) -> tuple[int, int]:
        """Smallest (w, h) the decoder may shrink a JPEG to: the most any view needs."""
        return max(v.draft_size for v in self.views)

    def _places(self) -> list[tuple[Preprocess, slice, slice]]:
        """Each view with its channels and its (centred) rows/columns on the packed canvas."""
        places = []
        for i, view in enumerate(self.views):
            offset = (self.size - view.size) // 2
            places.append((view, slice(3 * i, 3 * i + 3), slice(offset, offset + view.size)))
        return places

    def prepare(self, img: Image.Image) -> np.ndarray:
        """Return uint8 pixels (3·V, S, S): each view's geometry of the upright RGB photo, centred on the canvas."""
        img = upright_rgb(img)
        out = np.zeros((3 * len(self.views), self.size, self.size), dtype=np.uint8)
        for view, channels, span in self._places():
            out[channels, span, span] = view.geometry(img)
        return out

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The views of a packed batch (N, 3·V, S, S), each (N, 3, size_i, size_i)."""
        return [x[:, channels, span, span] for _, channels, span in self._places()]

    normalize = Preprocess.normalize
    __call__ = Preprocess.__call__

    def describe(self) -> dict:
        """Return a JSON-able description: each view's steps, and how they are packed and pooled."""
        views = [v.describe() for v in self.views]
        return {
            "input_size": [3 * len(views), self.size, self.size],
            "colour": "RGB",
            "geometry": "; ".join(f"view {i + 1}: {v['geometry']}" for i, v in enumerate(views)),
            "normalisation": "; ".join(sorted({v["normalisation"] for v in views})),
            "views": views,
            "pooling": "each view's pooled features scaled to length 1 and summed; class probabilities averaged",
            "mean_255": list(self.mean),
            "std_255": list(self.std),
        }
