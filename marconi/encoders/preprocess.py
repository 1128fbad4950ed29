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
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # malformed EXIF: keep the pixels as they are
            pass
        img = to_rgb(img)
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
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
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
