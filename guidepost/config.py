"""Server settings: defaults, then GUIDEPOST_* environment variables, then explicit overrides."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """Invalid configuration; the message says which variable and how to fix it."""


class Settings(BaseSettings):
    """Every knob of the server; each field is read from GUIDEPOST_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="GUIDEPOST_", extra="forbid", case_sensitive=False)

    preset: str = Field("default", description="Model preset: a file name in models/ without .yaml.")
    presets_dir: Path = Field(PROJECT_ROOT / "models", description="Folder holding the preset YAML files.")
    prompts_dir: Path = Field(PROJECT_ROOT / "prompts", description="Folder holding the prompt templates.")
    model_cache: Path = Field(PROJECT_ROOT / "model_cache", description="Where weights, tiny models and embeddings are cached.")
    device: str = Field("", description="Override the preset's device: auto, cpu, cuda or cuda:N.")
    dtype: Literal["", "auto", "float32", "bfloat16", "float16"] = Field("", description="Override the preset's dtype.")
    backend: str = Field("", description="Override the preset's backend: torch, openvino or openai.")
    adapter: str = Field(
        "", description="Override the preset's LoRA adapter: a name under <model cache>/adapters/, a folder, or none.")
    openvino_device: str = Field("", description="Override the preset's OpenVINO device: CPU, GPU, GPU.N or AUTO.")
    openvino_weights: Literal["", "fp32", "fp16", "int8", "int4"] = Field(
        "", description="Override the preset's OpenVINO weight format.")
    openvino_hint: Literal["", "LATENCY", "THROUGHPUT"] = Field("", description="Override the OpenVINO performance hint.")
    openvino_threads: int = Field(
        0, ge=0, description="OpenVINO inference threads per worker; 0: the preset's, else the torch thread share.")
    upstream_url: str = Field(
        "", description="Override the preset's vlm.upstream.url: the OpenAI-compatible server the openai backend uses.")
    upstream_model: str = Field("", description="Override the preset's vlm.upstream.model: the model name it serves.")
    upstream_api_key: str = Field(
        "", repr=False, description="The upstream's API key (else the variable the preset's api_key_env names).")
    torch_threads: int = Field(0, ge=0, description="Torch intra-op threads per worker; 0 lets gunicorn.conf.py decide.")
    static_cache: Literal["", "on", "off"] = Field(
        "", description="Override the preset's vlm.static_cache.enabled (torch backend: compiled decoding): on, off.")
    batch_max_size: int = Field(0, ge=0, le=64, description="Override the preset's vlm.batch.max_size (requests "
                                                            "generated together); 0: the preset's.")
    batch_window_ms: float | None = Field(None, ge=0, le=1000, description="Override the preset's "
                                          "vlm.batch.window_ms (how long a batch waits for more requests).")
    max_image_mb: float = Field(
        20.0, gt=0, description="Largest image in MB (413 above); a JSON body may be 4/3 of it for base64.")
    max_image_pixels: int = Field(64_000_000, gt=0, description="Largest decoded image in pixels (413 above).")
    max_text_chars: int = Field(500, gt=0, description="Longest question text accepted (422 above).")
    max_objects: int = Field(50, gt=0, description="Most client objects accepted per request (422 above).")
    max_images: int = Field(4, gt=0, description="Most images per request; the first is the scene (422 above).")
    generate_timeout_s: float = Field(
        0, ge=0,
        description="Default deadline of a request in seconds, from its arrival, waiting for a busy model included "
                    "(a request may ask for less with deadline_ms); 0: the preset's deadline_ms.")
    api_keys: str = Field("", description="Comma-separated API keys; when set, requests need X-API-Key or Bearer.")
    load: Literal["background", "eager", "lazy"] = Field(
        "background",
        description="When a worker loads its models: background (a thread started by the WSGI entry point, so "
                    "/healthz answers meanwhile), eager (before serving; a broken model stops start-up) or lazy "
                    "(on the first request).")
    load_in_background: bool | None = Field(
        None, description="Deprecated: false means GUIDEPOST_LOAD=eager, true GUIDEPOST_LOAD=background.")
    bind: str = Field("", description="The public listen address; default 0.0.0.0:$PORT (PORT defaults to 5000).")
    front: bool = Field(
        True, description="Put the buffering nginx front (started by the gunicorn master) on the public address; "
                          "off: gunicorn listens there itself (only behind a proxy that buffers requests).")
    front_max_per_ip: int = Field(
        64, ge=0, description="Requests in progress per client address that the front admits (429 above); 0: no bound.")
    workers: int = Field(1, ge=1, description="gunicorn worker processes; each loads its own copy of the models.")
    threads: int = Field(16, ge=1, description="Request threads per worker; the VLM still runs one generation at a time.")
    max_requests: int = Field(
        0, ge=0, description="Restart a worker after this many requests (plus up to 10 % jitter); 0: never. Bounds "
                             "slow memory growth inside libraries; use it with 2+ workers.")
    max_queue: int = Field(
        12, ge=0,
        description="/process requests one worker takes in at once (decoding, detecting, or waiting for or using the "
                    "VLM); the next gets 503 overloaded with Retry-After at once. Below GUIDEPOST_THREADS. 0: no bound.")
    max_in_flight: int = Field(
        2, ge=0,
        description="Requests one worker lets use the VLM at once (one generating, one waiting for the model); the next "
                    "is answered from the detector alone at once (fallback, reason busy). 0: no bound.")
    sse_keepalive_s: float = Field(
        5.0, gt=0, description="Seconds between keep-alive comments on a streamed answer while the VLM is quiet.")
    metrics: bool = Field(
        True, description="Serve Prometheus metrics at /metrics (on, off); under gunicorn all workers' values are "
                          "summed through PROMETHEUS_MULTIPROC_DIR.")
    metrics_public: bool = Field(
        False, description="Serve /metrics without an API key even when GUIDEPOST_API_KEYS is set.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Python log level.")

    @field_validator("device")
    @classmethod
    def _device_known(cls, value: str) -> str:
        value = value.strip().lower()
        if value and value not in ("auto", "cpu", "cuda") and not (value.startswith("cuda:") and value[5:].isdigit()):
            raise ValueError("use auto, cpu, cuda or cuda:N")
        return value

    @field_validator("backend")
    @classmethod
    def _backend_known(cls, value: str) -> str:
        from .presets import check_backend

        return check_backend(value) if value else value

    @field_validator("openvino_hint", mode="before")
    @classmethod
    def _hint_upper(cls, value):
        return value.upper() if isinstance(value, str) else value

    @field_validator("static_cache", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _load_alias(self) -> "Settings":
        if self.load_in_background is not None and "load" not in self.model_fields_set:
            self.load = "background" if self.load_in_background else "eager"
        return self

    @model_validator(mode="after")
    def _admission_below_threads(self) -> "Settings":
        # A request beyond the threads waits in gunicorn's queue, where the app cannot refuse it or answer it.
        if self.max_queue >= self.threads or (not self.max_queue and self.max_in_flight >= self.threads):
            raise ValueError(
                f"GUIDEPOST_MAX_QUEUE={self.max_queue} (and GUIDEPOST_MAX_IN_FLIGHT={self.max_in_flight}) must be less "
                f"than GUIDEPOST_THREADS={self.threads}, so that a free thread can answer the next request at once; "
                "raise GUIDEPOST_THREADS or lower GUIDEPOST_MAX_QUEUE")
        if self.max_queue and self.max_in_flight > self.max_queue:
            raise ValueError(f"GUIDEPOST_MAX_IN_FLIGHT={self.max_in_flight} must be at most "
                             f"GUIDEPOST_MAX_QUEUE={self.max_queue}: the VLM's requests are among those taken in")
        return self

    @property
    def max_body_bytes(self) -> int:
        """The largest request body: a base64 JSON body is 4/3 of the image, plus room for the other fields."""
        return int(self.max_image_mb * 2**20 * 4 / 3) + 2**16

    @property
    def body_too_large_message(self) -> str:
        """What a client whose body is over max_body_bytes is told (by the app, or by the front before it)."""
        return (f"The request body is larger than {self.max_body_bytes / 2**20:.1f} MB; an image may be at most "
                f"{self.max_image_mb:g} MB (GUIDEPOST_MAX_IMAGE_MB).")

    @property
    def api_key_set(self) -> frozenset[str]:
        """The configured API keys, empty when authentication is off."""
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())


def load_settings(overrides: dict | None = None) -> Settings:
    """Build Settings from the environment and overrides, or raise ConfigError saying how to fix it."""
    overrides = {k.lower(): v for k, v in (overrides or {}).items()}
    known = set(Settings.model_fields)
    unknown = [f"GUIDEPOST_{n[10:].upper()}" for n in os.environ if n.upper().startswith("GUIDEPOST_")
               and n[10:].lower() not in known]
    unknown += [f"'{n}' (override)" for n in overrides if n not in known]
    if unknown:
        hints = []
        for name in unknown:
            bare = name.removeprefix("GUIDEPOST_").strip("'").split("'")[0].lower()
            close = difflib.get_close_matches(bare, known, n=1)
            hints.append(f"{name}" + (f" (did you mean GUIDEPOST_{close[0].upper()}?)" if close else ""))
        raise ConfigError(f"Unknown setting: {', '.join(hints)}. Known: "
                          + ", ".join(f"GUIDEPOST_{n.upper()}" for n in sorted(known)))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a rule across settings: its message names them
                problems.append(err["msg"].removeprefix("Value error, "))
                continue
            name, given = str(err["loc"][0]), err.get("input")
            problems.append(f"GUIDEPOST_{name.upper()}={given!r}: {err['msg']}")
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(problems)) from None
