"""Where and in what precision an encoder runs: chosen once, when it is loaded."""

from __future__ import annotations

import torch

from marconi.errors import Unavailable


class DeviceUnavailable(Unavailable):
    """The requested device (e.g. ``cuda``) does not exist on this machine."""

    code = "device_unavailable"


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


DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_dtype(dtype: str | torch.dtype, device: torch.device, cuda_default: str = "bfloat16") -> torch.dtype:
    """Return the compute dtype: "auto" is float32 on CPU and ``cuda_default`` autocast on CUDA (an encoder's own
    choice, see ``EncoderSpec.cuda_dtype``; float16 where the GPU has no bfloat16)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower()
    if key == "auto":
        if device.type != "cuda":
            return torch.float32
        chosen = DTYPES[cuda_default]
        return chosen if chosen != torch.bfloat16 or torch.cuda.is_bf16_supported() else torch.float16
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return DTYPES[key]
