"""The preset with every GUIDEPOST_* override applied, resolved once at start-up."""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from .adapters import Adapter, resolve_adapter
from .config import Settings
from .presets import OpenVINOSpec, Preset, UpstreamSpec, VLMSpec, load_preset


class Deployment(BaseModel):
    """What this process runs: the preset, its backend, device, dtype and OpenVINO settings, overrides applied."""

    model_config = ConfigDict(frozen=True)

    preset: Preset
    backend: str
    device: str  # auto, cpu, cuda or cuda:N (torch backend)
    dtype: str  # auto, float32, bfloat16 or float16 (torch backend)
    openvino: OpenVINOSpec
    upstream: UpstreamSpec  # the openai backend's server, model defaulting to the preset's vlm.id
    upstream_api_key: SecretStr = SecretStr("")  # GUIDEPOST_UPSTREAM_API_KEY, else the variable api_key_env names
    torch_threads: int  # 0: torch's own default
    model_cache: Path
    adapter: Adapter | None = None  # a LoRA adapter merged into the VLM at load


def resolve_deployment(settings: Settings) -> Deployment:
    """Read the preset and apply the settings' overrides; ValueError says what is wrong and how to fix it."""
    preset = load_preset(settings.presets_dir, settings.preset)
    ov_overrides = {"device": settings.openvino_device, "weights": settings.openvino_weights,
                    "hint": settings.openvino_hint,
                    # Without an explicit count, OpenVINO takes the worker's share of the cores like torch does.
                    "threads": settings.openvino_threads or preset.openvino.threads or settings.torch_threads}
    openvino = OpenVINOSpec(**{**preset.openvino.model_dump(), **{k: v for k, v in ov_overrides.items() if v}})
    vlm = preset.vlm.model_dump()
    if settings.static_cache:
        vlm["static_cache"]["enabled"] = settings.static_cache == "on"
    if settings.batch_max_size:
        vlm["batch"]["max_size"] = settings.batch_max_size
    if settings.batch_window_ms is not None:
        vlm["batch"]["window_ms"] = settings.batch_window_ms
    try:  # validated again: an override can make a combination the preset could not hold (compiled decoding + batches)
        preset = preset.model_copy(update={"vlm": VLMSpec.model_validate(vlm)})
    except ValidationError as exc:
        reasons = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise ValueError(f"preset '{preset.name}' with GUIDEPOST_STATIC_CACHE / GUIDEPOST_BATCH_*: {reasons}") from None
    backend = settings.backend or preset.backend
    upstream = _upstream(preset, settings, required=backend == "openai")
    api_key = settings.upstream_api_key or (os.environ.get(upstream.api_key_env, "") if upstream.api_key_env else "")
    # A missing adapter, or one trained for another base model, stops start-up here, before any model loads.
    adapter = resolve_adapter(settings.adapter or preset.vlm.adapter or "", settings.model_cache, preset.vlm,
                              preset.name)
    return Deployment(preset=preset, backend=backend, device=settings.device or preset.device,
                      dtype=settings.dtype or preset.dtype, openvino=openvino, upstream=upstream,
                      upstream_api_key=api_key, torch_threads=settings.torch_threads,
                      model_cache=settings.model_cache, adapter=adapter)


def _upstream(preset: Preset, settings: Settings, *, required: bool) -> UpstreamSpec:
    """The preset's vlm.upstream with GUIDEPOST_UPSTREAM_URL / _MODEL applied; ValueError when required but unset."""
    spec = preset.vlm.upstream
    overrides = {"url": settings.upstream_url, "model": settings.upstream_model or spec.model or preset.vlm.id}
    upstream = UpstreamSpec(**{**spec.model_dump(), **{k: v for k, v in overrides.items() if v}})
    if required and not upstream.url:
        raise ValueError(f"the openai backend needs the upstream's URL: set GUIDEPOST_UPSTREAM_URL (e.g. "
                         f"http://gpu-box:8000/v1) or vlm.upstream.url in preset '{preset.name}'")
    return upstream
