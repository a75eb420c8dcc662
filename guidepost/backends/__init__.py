"""Backends by name, in the open_clip manner: each loads the detector and the VLM for one runtime.

A backend is imported only when a deployment asks for it, so a torch deployment never imports OpenVINO.
Adding one is an entry here and a module with a `Backend` subclass; nothing else switches on the name.
"""
from __future__ import annotations

import importlib

from .base import Backend

BACKENDS = {
    "torch": "guidepost.backends.torch_backend:TorchBackend",
    "openvino": "guidepost.backends.openvino_backend:OpenVINOBackend",
    "openai": "guidepost.backends.openai_backend:OpenAIBackend",
}


def backend_names() -> list[str]:
    """The names a preset's `backend` or GUIDEPOST_BACKEND may take."""
    return list(BACKENDS)


def create_backend(deployment) -> Backend:
    """The backend object for a deployment (its runtime settings resolved)."""
    module, _, name = BACKENDS[deployment.backend].partition(":")
    return getattr(importlib.import_module(module), name)(deployment)


__all__ = ["BACKENDS", "Backend", "backend_names", "create_backend"]
