"""Resolve 'auto' device and dtype settings into torch objects."""
from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """'auto' → the first CUDA GPU when there is one, else the CPU."""
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{name}' was asked for but torch sees no CUDA GPU; set GUIDEPOST_DEVICE=cpu")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' → bfloat16 on a GPU, float32 on the CPU (CPU half precision is slow)."""
    if name in ("", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[name]
