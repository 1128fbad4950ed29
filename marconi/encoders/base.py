"""The one interface every encoder has: name, dims, preprocess, encode_batch, describe.

An :class:`EncoderSpec` says what a model is (output size, preprocessing, features, weights, licence) and how to
load its weights; :func:`marconi.encoders.load_encoder` turns a spec into an :class:`Encoder`: one loaded model on
one device. Only :meth:`Encoder.encode_batch` touches the device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from marconi.encoders.preprocess import Preprocess
from marconi.errors import Unavailable


class EncoderUnavailable(Unavailable):
    """The encoder's code or weights are not installed; the message says exactly how to get them."""

    code = "encoder_unavailable"


class Encoder:
    """One loaded model on one device.

    Attributes: ``name``, ``dims``, ``device``, ``dtype`` (compute dtype; non-float32 runs under autocast),
    ``preprocess`` (a picklable :class:`Preprocess`: ``encoder.preprocess(img)`` → CPU float32 CxHxW tensor;
    it does not drag the model along when pickled into worker processes), ``model`` (eval-mode ``nn.Module``).
    """

    def __init__(
        self,
        spec: EncoderSpec,
        model: nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        weights_source: dict,
        channels_last: bool = False,
        compile: bool = False,
    ):
        """Put ``model`` in eval mode on ``device``; use :func:`marconi.encoders.load_encoder` rather than this."""
        self.spec = spec
        self.name = spec.name
        self.dims = spec.dims
        self.device = device
        self.dtype = dtype
        self.preprocess: Preprocess = spec.preprocess
        self.weights_source = weights_source
        self.channels_last = channels_last
        self.compiled = compile
        self._compiled_rows = 0
        # On CPU, small chunks keep activations in cache: 2-4x more images/s for EfficientNet-Lite0 on 2 cores
        # than one 32-image forward pass (VGG16 is compute-bound and indifferent). GPUs take the whole batch.
        self.micro_batch: int | None = 4 if device.type == "cpu" else None
        model = model.eval().requires_grad_(False).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        # on CUDA, "reduce-overhead" replays the whole forward pass as one CUDA graph: an eager EfficientNet is
        # hundreds of small kernel launches, which a busy host (decoders, the COPY writer) cannot issue fast enough
        mode = "reduce-overhead" if device.type == "cuda" else None
        self._forward = torch.compile(model, mode=mode) if compile else model
        self._mean = torch.tensor(self.preprocess.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self._std = torch.tensor(self.preprocess.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def __repr__(self) -> str:
        """Return a short description."""
        return f"Encoder({self.name!r}, dims={self.dims}, device={self.device}, dtype={self.dtype})"

    def describe(self) -> dict:
        """Return a JSON-able description: name, dims, input size, preprocessing, features, weights, licence, dtype."""
        pre = self.preprocess.describe()
        return {
            "name": self.name,
            "dims": self.dims,
            "input_size": pre["input_size"],
            "preprocessing": pre,
            "features": self.spec.features + "; rows L2-normalised",
            "weights": {
                "source": self.spec.weights,
                "licence": self.spec.licence,
                "credit": self.spec.credit,
                "loaded_from": dict(self.weights_source),
            },
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "channels_last": self.channels_last,
            "micro_batch": self.micro_batch,
            "compiled": self.compiled,
            "torch": torch.__version__,
        }

    def _run(self, x: torch.Tensor, rows: int) -> torch.Tensor:
        if not self.compiled or len(x) == rows:
            return self._forward(x)
        padded = torch.cat([x, x.new_zeros((rows - len(x), *x.shape[1:]))])
        if self.channels_last:
            padded = padded.contiguous(memory_format=torch.channels_last)
        return self._forward(padded)[: len(x)]

    @property
    def classes(self) -> int:
        """How many classes the model's classifier head knows (1,000 ImageNet classes), or 0 without a head."""
        head = getattr(self.model, "classifier", None)
        return int(head.out_features) if head is not None else 0

    def encode_batch(self, batch: torch.Tensor, with_classes: bool = False):
        """Return (N, dims) float32 L2-normalised features; with ``with_classes``, (features, class probabilities).

        A multi-view model (its input packed by :class:`marconi.encoders.preprocess.MultiView`) returns (N, views,
        D): the views' features are each scaled to length 1 and summed, and their class probabilities averaged.

        ``batch`` is N stacked :meth:`preprocess` outputs (float32), or uint8 pixels from
        :meth:`Preprocess.prepare`, which are then normalised on the device. Pinned CPU memory is copied
        asynchronously. Class probabilities (N, :attr:`classes`) come from the model's classifier head applied to
        the same pooled features (one forward pass); an encoder without a head cannot give them (ValueError).
        """
        if with_classes and not self.classes:
            raise ValueError(f"{self.name} has no classifier head: it cannot tag images or answer text queries")
        if batch.dim() == 3:
            batch = batch.unsqueeze(0)
        with torch.inference_mode():
            non_blocking = self.device.type == "cuda" and batch.device.type == "cpu" and batch.is_pinned()
            x = batch.to(self.device, non_blocking=non_blocking)
            if x.dtype == torch.uint8:  # raw pixels from Preprocess.prepare: normalise here, on the device
                x = x.float()
                if self.preprocess.bgr:
                    x = x.flip(1)
                x = (x - self._mean) / self._std
            else:
                x = x.float()
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            step = self.micro_batch or len(x)
            if self.compiled:
                # a compiled model specialises on the batch size: pad short batches (the last one of a run) to the
                # first size seen instead of compiling again (eval mode, so rows do not affect each other)
                self._compiled_rows = self._compiled_rows or step
                step = self._compiled_rows
            with torch.autocast(device_type=self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                feats = torch.cat([self._run(x[i : i + step], step) for i in range(0, len(x), step)])
            feats, probs = feats.float(), None
            if with_classes:
                probs = torch.softmax(self.model.classifier(feats), dim=-1)
                probs = (probs.mean(dim=1) if feats.dim() == 3 else probs).cpu().numpy().astype(np.float32)
            if feats.dim() == 3:  # a multi-view model's (N, views, D): each view at length 1, summed
                feats = F.normalize(feats, dim=2).sum(dim=1)
            feats = F.normalize(feats, dim=1)
            feats = feats.cpu().numpy().astype(np.float32, copy=False)
            return (feats, probs) if with_classes else feats

    def encode_image(self, img: Image.Image | Sequence[Image.Image], with_classes: bool = False):
        """Return the (dims,) float32 L2-normalised feature vector of one image (e.g. a query); with
        ``with_classes``, (features, class probabilities). A list of frames (an animated image, see
        :func:`marconi.imageio.sample_frames`) gives one vector pooled as batch encoding pools stored GIFs."""
        frames = [img] if isinstance(img, Image.Image) else list(img)
        out = self.encode_batch(torch.stack([self.preprocess(f) for f in frames]), with_classes=with_classes)
        pooled = pool_frames(out if with_classes else (out,), [len(frames)])
        return (pooled[0][0], pooled[1][0]) if with_classes else pooled[0][0]


def pool_frames(encoded: tuple, frames: list[int]) -> tuple:
    """Average consecutive rows per image (``frames[i]`` rows for image i): features re-normalised, class
    probabilities averaged as they are. ``encoded`` is (features, *other per-row arrays)."""
    if all(n == 1 for n in frames):
        return encoded
    bounds = np.cumsum([0, *frames])
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    feats = np.stack([encoded[0][a:b].mean(axis=0) for a, b in spans])
    feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    rest = tuple(np.stack([e[a:b].mean(axis=0) for a, b in spans]) for e in encoded[1:])
    return (feats.astype(np.float32), *rest)


Loader = Callable[[Path, Path | None], tuple[nn.Module, dict]]


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder is: output size, preprocessing, which layer, where the weights come from, how to load them.

    ``loader(cache_dir, weights_path)`` returns (model, provenance of its weights) or raises EncoderUnavailable.
    ``encoder_class`` wraps the loaded model (an encoder of another modality brings its own subclass).
    """

    name: str
    dims: int
    preprocess: Preprocess
    features: str
    weights: str
    licence: str
    credit: str
    loader: Loader
    modality: str = "image"
    encoder_class: type[Encoder] = Encoder
    cuda_dtype: str = "bfloat16"  # autocast dtype on CUDA when "auto" is asked for
