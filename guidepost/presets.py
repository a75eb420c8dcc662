"""Model presets: models/<name>.yaml validated into typed specs."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .backends import backend_names
from .tiny import TINY_MODELS

DEFAULT_TEMPLATES = (
    "a photo of {}.",
    "a street photo with {} ahead.",
    "a blurry phone photo of {}.",
    "{} in front of the camera.",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectorSpec(_Strict):
    """The CLIP detector: an open_clip architecture and its weights."""

    source: Literal["open_clip", "tiny"] = "open_clip"
    arch: str = Field(description="open_clip architecture (ViT-B-32) or local-dir:<folder>")
    pretrained: str | None = Field(None, description="open_clip pretrained tag or a checkpoint path")
    threshold: float = Field(0.1, ge=0, le=1, description="lowest softmax score reported as an object")
    top_k: int = Field(5, ge=1, description="most objects reported per image")
    directions: bool = Field(True, description="say where each hazard is (left, ahead, right) from three crops "
                                               "scored in the same forward as the whole image")
    templates: tuple[str, ...] = DEFAULT_TEMPLATES

    @model_validator(mode="after")
    def _tiny_known(self):
        _check_tiny(self.source, self.arch)
        return self


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class StaticCacheSpec(_Strict):
    """torch backend: decode with a static KV cache and a torch.compile'd decoding step (CUDA graphs on a GPU)."""

    enabled: bool = Field(False, description="compiled decoding; compiled by the warm-up, before /readyz says ready")
    max_len: int = Field(4096, ge=16, description="tokens the cache holds: the longest prompt (image tokens "
                                                  "included) plus max_new_tokens; one shape, compiled once")
    compile_mode: Literal[COMPILE_MODES] = Field(
        "reduce-overhead", description="torch.compile mode; reduce-overhead replays the step as a CUDA graph")


class UpstreamSpec(_Strict):
    """An OpenAI-compatible server that generates for the `openai` backend (vLLM, Ollama, OVMS, another Guidepost)."""

    url: str = Field("", description="the base URL an OpenAI SDK takes, e.g. http://gpu-box:8000/v1 "
                                     "(GUIDEPOST_UPSTREAM_URL overrides)")
    model: str = Field("", description="the model name the upstream serves (GUIDEPOST_UPSTREAM_MODEL); default: vlm.id")
    api_key_env: str = Field("", description="environment variable holding the upstream's API key "
                                             "(GUIDEPOST_UPSTREAM_API_KEY wins when set)")
    timeout_s: float = Field(5.0, gt=0, description="connect and /v1/models timeout; a generation is bounded by "
                                                    "each request's deadline")
    check_s: float = Field(5.0, gt=0, description="seconds between readiness checks of the upstream (/v1/models)")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.match(r"https?://[^/\s]+", value):
            raise ValueError("use an http:// or https:// base URL, e.g. http://gpu-box:8000/v1")
        return value


class BatchSpec(_Strict):
    """How requests that reach a busy VLM are generated together (one forward per step for the whole batch)."""

    max_size: int = Field(1, ge=1, le=64, description="most requests generated together; 1: one at a time")
    window_ms: float = Field(0.0, ge=0, le=1000, description="how long the first request waits for others to "
                                                              "join its batch; 0: only those already waiting")


# The language model's attention and MLP projections in every shipped family (LLaVA, Qwen2.5-VL and DeepSeek-VL
# call it language_model, Idefics3/SmolVLM text_model); the vision tower and projector stay frozen.
LORA_TARGETS = (r".*\.(language_model|text_model)\.layers\.\d+\."
                r"(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)")


class LoRASpec(_Strict):
    """LoRA defaults for `flask finetune train` on this preset's VLM (each has a command-line override)."""

    r: int = Field(16, ge=1, le=512, description="rank of the update matrices")
    alpha: int = Field(32, ge=1, description="scale: the update is multiplied by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: str = Field(LORA_TARGETS, description="regex (full match) over module names that get LoRA")

    @field_validator("target_modules")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


class VLMSpec(_Strict):
    """The vision-language model: a Hugging Face id (or local folder) and generation defaults."""

    source: Literal["hub", "tiny"] = "hub"
    id: str
    revision: str = "main"
    max_new_tokens: int = Field(64, ge=1, le=1024)
    processor_kwargs: dict = Field(default_factory=dict, description="extra AutoProcessor.from_pretrained arguments")
    generate_kwargs: dict = Field(default_factory=dict, description="extra generate() arguments")
    static_cache: StaticCacheSpec = StaticCacheSpec()
    upstream: UpstreamSpec = UpstreamSpec()  # used by the openai backend only
    batch: BatchSpec = BatchSpec()
    adapter: str | None = Field(None, description="LoRA adapter: a name under <model cache>/adapters/ or a folder")
    lora: LoRASpec = LoRASpec()

    @field_validator("generate_kwargs")
    @classmethod
    def _not_the_servers(cls, value: dict) -> dict:
        # The server sets these per request (the answer's budget, its deadline and stop hook, its stream).
        taken = sorted(set(value) & {"max_new_tokens", "stopping_criteria", "streamer"})
        if taken:
            raise ValueError(f"{', '.join(taken)} cannot be set here: the server sets them per request "
                             "(use vlm.max_new_tokens for the answer's length)")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        _check_tiny(self.source, self.id)
        if self.static_cache.enabled and self.batch.max_size > 1:
            # The static cache and its compiled step have one batch size; a batch of another size would re-allocate
            # the cache and recompile in the middle of serving.
            raise ValueError("vlm.static_cache and vlm.batch.max_size > 1 do not combine: choose compiled decoding "
                             "(one request at a time, lower latency) or batching (throughput under load)")
        return self


def _check_tiny(source: str, name: str) -> None:
    if source == "tiny" and name not in TINY_MODELS:
        raise ValueError(f"tiny model '{name}' does not exist; use one of {list(TINY_MODELS)}")


WEIGHT_FORMATS = ("fp32", "fp16", "int8", "int4")


class OpenVINOSpec(_Strict):
    """How the OpenVINO backend exports and runs both models (used when backend is openvino)."""

    device: str = Field("CPU", description="OpenVINO device: CPU, GPU, GPU.N or AUTO")
    weights: Literal["fp32", "fp16", "int8", "int4"] = Field(
        "int8", description="IR weight format; int8/int4 are nncf weight compression")
    hint: Literal["LATENCY", "THROUGHPUT"] = Field("LATENCY", description="OpenVINO PERFORMANCE_HINT")
    threads: int = Field(0, ge=0, description="INFERENCE_NUM_THREADS; 0: the worker's share of the cores")
    config: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra OpenVINO properties, e.g. KV_CACHE_PRECISION: f32")

    @field_validator("device")
    @classmethod
    def _ov_device(cls, value: str) -> str:
        value = value.strip().upper()
        if not re.fullmatch(r"CPU|GPU(\.\d+)?|NPU|AUTO(:[\w.,]+)?|HETERO:[\w.,]+|MULTI:[\w.,]+", value):
            raise ValueError("use CPU, GPU, GPU.N, NPU or AUTO")
        return value


class Preset(_Strict):
    """One model combination, with where and how it runs."""

    name: str
    description: str = ""
    backend: str = Field("torch", description="a name in guidepost.backends.BACKENDS")
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    image_max_side: int = Field(1024, ge=32, description="images are downscaled to this longest side")
    max_words: int = Field(40, ge=5, description="word cap of the spoken answer")
    deadline_ms: int = Field(15000, ge=1, description="default deadline of a request from its arrival, waiting for "
                                                      "the model included (GUIDEPOST_GENERATE_TIMEOUT_S overrides)")
    detector: DetectorSpec
    vlm: VLMSpec
    openvino: OpenVINOSpec = OpenVINOSpec()

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        return check_backend(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError("use auto, cpu, cuda or cuda:N")
        return value


def check_backend(name: str) -> str:
    """The name if a backend is registered under it; else ValueError listing the names."""
    if name not in backend_names():
        raise ValueError(f"unknown backend '{name}'; use one of {backend_names()}")
    return name


def available_presets(folder: Path) -> list[str]:
    """Preset names found in the folder (every YAML but the vocabulary)."""
    return sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "vocabulary")


def load_preset(folder: Path, name: str) -> Preset:
    """Read and validate models/<name>.yaml; errors list the valid names or the bad fields."""
    path = folder / f"{name}.yaml"
    if name == "vocabulary" or not path.is_file():
        raise ValueError(f"unknown preset '{name}'; set GUIDEPOST_PRESET to one of {available_presets(folder)}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        return Preset(name=name, **data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"preset {path} is invalid: {problems}") from None
