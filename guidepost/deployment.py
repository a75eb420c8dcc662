"""The preset with every GUIDEPOST_* override applied, resolved once at start-up."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from .config import Settings
from .presets import OpenVINOSpec, Preset, load_preset


class Deployment(BaseModel):
    """What this process runs: the preset, its backend, device, dtype and OpenVINO settings, overrides applied."""

    model_config = ConfigDict(frozen=True)

    preset: Preset
    backend: str
    device: str  # auto, cpu, cuda or cuda:N (torch backend)
    dtype: str  # auto, float32, bfloat16 or float16 (torch backend)
    openvino: OpenVINOSpec
    torch_threads: int  # 0: torch's own default
    model_cache: Path


def resolve_deployment(settings: Settings) -> Deployment:
    """Read the preset and apply the settings' overrides; ValueError says what is wrong and how to fix it."""
    preset = load_preset(settings.presets_dir, settings.preset)
    ov_overrides = {"device": settings.openvino_device, "weights": settings.openvino_weights,
                    "hint": settings.openvino_hint,
                    # Without an explicit count, OpenVINO takes the worker's share of the cores like torch does.
                    "threads": settings.openvino_threads or preset.openvino.threads or settings.torch_threads}
    openvino = OpenVINOSpec(**{**preset.openvino.model_dump(), **{k: v for k, v in ov_overrides.items() if v}})
    if settings.static_cache:
        static = preset.vlm.static_cache.model_copy(update={"enabled": settings.static_cache == "on"})
        preset = preset.model_copy(update={"vlm": preset.vlm.model_copy(update={"static_cache": static})})
    return Deployment(preset=preset, backend=settings.backend or preset.backend,
                      device=settings.device or preset.device, dtype=settings.dtype or preset.dtype,
                      openvino=openvino, torch_threads=settings.torch_threads, model_cache=settings.model_cache)
