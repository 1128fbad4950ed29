"""The encoder registry: each model is a small module behind one interface, chosen by name (Immich-style).

Encoders (see ``ENCODERS``):

- ``efficientnet-lite0-2view`` (:mod:`marconi.encoders.efficientnet`): EfficientNet-Lite0 over two views of each
  photo, the 224 centre crop and the whole photo at 256x256, their 1280-d pooled features scaled to length 1
  and summed. The default: on Caltech-101 with the learned metric, P@1/P@10 0.932/0.910 on unseen photos
  against 0.923/0.903 for the whole photo alone (docs/quality.md), at about 1.8x its model time.
- ``efficientnet-lite0-256``: the whole image at 256x256 alone (the default before efficientnet-lite0-2view).
- ``efficientnet-lite0``: the same network on a 224x224 centre crop, the fastest (and the default before
  efficientnet-lite0-256; it measured better than vgg16-conv, P@1 0.876 against 0.828, docs/evaluation.md).
- ``efficientnet-lite2``: the same head on the larger Lite2 trunk (260x260 input), about 4x slower on CPU.
- ``vgg16-conv`` (:mod:`marconi.encoders.vgg16`): conv5_3, GeM pooling, 512-d.
- ``vgg16`` (:mod:`marconi.encoders.vgg16`): torchvision's fc7, 4096-d (weights file supplied by the user).

Adding an encoder is one module defining an :class:`EncoderSpec` (its loader, preprocessing and description) and
one line in ``_SPECS`` below. :func:`load_encoder` chooses the device once; only :meth:`Encoder.encode_batch`
touches it. Batch encoding with decode workers is :func:`marconi.encoders.batch.encode_stream`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from marconi.encoders import efficientnet, text, vgg16
from marconi.encoders.base import Encoder, EncoderSpec, EncoderUnavailable
from marconi.encoders.cpu_memory import keep_freed_memory
from marconi.encoders.device import DeviceUnavailable, choose_device, resolve_dtype
from marconi.encoders.preprocess import Preprocess

__all__ = [
    "DEFAULT_ENCODER",
    "ENCODERS",
    "IMAGE_ENCODERS",
    "DeviceUnavailable",
    "Encoder",
    "EncoderSpec",
    "EncoderUnavailable",
    "Preprocess",
    "choose_device",
    "get_spec",
    "load_encoder",
]

_SPECS = (
    efficientnet.LITE0_2VIEW_SPEC,
    efficientnet.LITE0_256_SPEC,
    efficientnet.SPEC,
    efficientnet.LITE2_SPEC,
    vgg16.CONV_SPEC,
    vgg16.FC7_SPEC,
    text.SPEC,  # modality "text": load_encoder("minilm") returns a text.SentenceEncoder
)

ENCODERS: dict[str, EncoderSpec] = {spec.name: spec for spec in _SPECS}
IMAGE_ENCODERS: dict[str, EncoderSpec] = {name: s for name, s in ENCODERS.items() if s.modality == "image"}

DEFAULT_ENCODER = efficientnet.LITE0_2VIEW_SPEC.name


def get_spec(name: str) -> EncoderSpec:
    """Return the spec of encoder ``name``; raise ValueError listing the known names."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name]


def load_encoder(
    name: str,
    device: str | torch.device = "auto",
    cache_dir: Path | None = None,
    weights_path: Path | None = None,
    dtype: str = "auto",
    compile: bool = False,
    channels_last: bool | None = None,
) -> Encoder:
    """Return a ready :class:`Encoder`; raise EncoderUnavailable (with instructions) if code or weights are missing.

    ``cache_dir`` (default ``Config.model_dir``) holds converted weights (vgg16-conv). ``weights_path``
    overrides the weights file: torchvision's ``vgg16-397923af.pth`` for vgg16, a ``.onnx`` or converted ``.pt``
    for vgg16-conv, a ``.pth`` for the EfficientNet-Lite encoders. ``dtype`` "auto" means float32 on CPU and
    the encoder's ``cuda_dtype`` autocast on CUDA. ``channels_last`` None means on (NHWC: faster with cuDNN and
    with oneDNN on CPU, 1.25-1.5x measured on 2 CPU cores). ``compile`` wraps the model in ``torch.compile`` (on
    CUDA as one CUDA graph per batch size).
    """
    spec = get_spec(name)
    dev = choose_device(device)
    compute_dtype = resolve_dtype(dtype, dev, spec.cuda_dtype)
    if cache_dir is None:
        from marconi.config import from_env

        cache_dir = from_env().model_dir
    model, source = spec.loader(Path(cache_dir), Path(weights_path) if weights_path is not None else None)
    if dev.type == "cpu":
        keep_freed_memory()  # each forward pass reuses the memory of the last instead of faulting it in again
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed 224x224 input: let cuDNN pick the fastest kernels once
    use_channels_last = True if channels_last is None else bool(channels_last)
    return spec.encoder_class(spec, model, dev, compute_dtype, source, channels_last=use_channels_last,
                              compile=compile)
