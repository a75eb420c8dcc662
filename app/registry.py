"""Builds and holds the models of one worker process, and says whether they are ready."""
from __future__ import annotations

import logging
import threading
import time
from functools import partial
from pathlib import Path

from .config import Settings
from .hazards import Vocabulary
from .pipeline import Pipeline
from .presets import OpenVINOSpec, Preset, load_preset
from .prompts import PromptBook

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to do about it."""


class Registry:
    """Models for one process: created in create_app, loaded once, read by every request."""

    def __init__(self, settings: Settings):
        self.settings = settings
        # Cheap, pure-Python parts load at once so a bad preset or template fails start-up.
        self.preset: Preset = load_preset(settings.presets_dir, settings.preset)
        self.backend = settings.backend or self.preset.backend
        self.openvino = resolve_openvino(self.preset.openvino, settings)
        self.vocabulary = Vocabulary.load(settings.presets_dir / "vocabulary.yaml")
        self.prompts = PromptBook.load(settings.prompts_dir)
        self.state = "loading"  # loading → ready | failed
        self.error: str | None = None
        self.pipeline: Pipeline | None = None
        self.device = self.dtype = None
        self.torch_threads: int | None = None
        self._loaded = threading.Event()
        self._start_lock = threading.Lock()
        self._started = False

    @property
    def ready(self) -> bool:
        """Whether every model is loaded and requests can be served."""
        return self.state == "ready"

    def start(self, background: bool) -> None:
        """Load the models now, or in a daemon thread so the process answers /healthz meanwhile; once."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
        if background:
            threading.Thread(target=self.load, name="guidepost-model-loader", daemon=True).start()
        else:
            self.load()

    def ensure_loaded(self) -> None:
        """Load synchronously if nobody started loading yet, else wait; raise ModelLoadError on failure."""
        self.start(background=False)
        self.wait()
        if self.state == "failed":
            raise ModelLoadError(self.error)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading has finished (ready or failed); True if it finished."""
        return self._loaded.wait(timeout)

    def load(self) -> None:
        """Build the detector, the VLM and the pipeline; record ready or the error."""
        start = time.perf_counter()
        try:
            pipeline = self._build()
            pipeline.warm_up()
            self.pipeline, self.state = pipeline, "ready"
            log.info("preset '%s' ready in %.1f s on %s (%s)", self.preset.name, time.perf_counter() - start,
                     self.device, self.dtype)
        except Exception as exc:
            self.state, self.error = "failed", str(exc)
            log.exception("loading preset '%s' failed", self.preset.name)
        finally:
            self._loaded.set()

    def _build(self) -> Pipeline:
        import torch  # imported here: the gunicorn master never touches torch

        from .detector import ClipDetector
        from .devices import resolve_device, resolve_dtype
        from .vlm import TorchVLM

        settings, preset, cache = self.settings, self.preset, Path(self.settings.model_cache)
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        self.torch_threads = torch.get_num_threads()
        det_spec, vlm_spec = preset.detector, preset.vlm
        det_ref, vlm_ref = model_refs(preset, cache)
        if self.backend == "openvino":
            from .detector.openvino_clip import load_openvino_detector
            from .ir_cache import openvino_properties
            from .vlm.openvino_vlm import OpenVINOVLM

            # Without an explicit thread count, OpenVINO takes the worker's share of the cores like torch does.
            ov = self.openvino = self.openvino.model_copy(
                update={"threads": self.openvino.threads or settings.torch_threads})  # /info shows what runs
            properties = openvino_properties(ov.hint, ov.threads, ov.device, ov.config, cache)
            self.device, self.dtype = ov.device, ov.weights
            load_detector = partial(load_openvino_detector, det_spec, det_ref, self.vocabulary, ov, properties, cache)
            load_vlm = partial(OpenVINOVLM.load_openvino, vlm_spec, vlm_ref, ov, properties, cache)
        else:
            self.device = resolve_device(settings.device or preset.device)
            self.dtype = resolve_dtype(settings.dtype or preset.dtype, self.device)
            on_device = {"device": self.device, "dtype": self.dtype, "cache_dir": cache}
            load_detector = partial(ClipDetector.load, det_spec, det_ref, self.vocabulary, **on_device)
            load_vlm = partial(TorchVLM.load, vlm_spec, vlm_ref, **on_device)
        try:
            log.info("loading detector %s (%s)", det_ref, self.backend)
            detector = load_detector()
        except Exception as exc:
            raise ModelLoadError(_load_hint("detector", det_ref, exc, cache)) from exc
        try:
            log.info("loading VLM %s (%s)", vlm_ref, self.backend)
            vlm = load_vlm()
        except Exception as exc:
            raise ModelLoadError(_load_hint("VLM", vlm_ref, exc, cache)) from exc
        return Pipeline(detector, vlm, self.vocabulary, self.prompts, max_words=preset.max_words,
                        generate_timeout_s=settings.generate_timeout_s, max_question_chars=settings.max_text_chars)

    def info(self) -> dict:
        """Preset, model ids, backend and device, for /info and responses."""
        pipeline = self.pipeline
        return {
            "vlm": pipeline.vlm.name if pipeline else self.preset.vlm.id,
            "detector": pipeline.detector.name if pipeline else self.preset.detector.arch,
            "backend": self.backend,
        }


def model_refs(preset: Preset, cache: Path) -> tuple[str, str]:
    """What open_clip and from_pretrained load for the preset's detector and VLM."""
    from . import tiny

    det, vlm = preset.detector, preset.vlm
    # A tiny model is named by its id/arch (tiny-clip, tiny-llava...) and built locally on first use.
    det_ref = f"local-dir:{tiny.ensure_built(det.arch, cache)}" if det.source == "tiny" else det.arch
    vlm_ref = str(tiny.ensure_built(vlm.id, cache)) if vlm.source == "tiny" else vlm.id
    return det_ref, vlm_ref


def resolve_openvino(spec: OpenVINOSpec, settings: Settings) -> OpenVINOSpec:
    """The preset's OpenVINO settings with any GUIDEPOST_OPENVINO_* override, validated again."""
    overrides = {"device": settings.openvino_device, "weights": settings.openvino_weights,
                 "hint": settings.openvino_hint, "threads": settings.openvino_threads}
    return OpenVINOSpec(**{**spec.model_dump(), **{key: value for key, value in overrides.items() if value}})


def _load_hint(what: str, ref: str, exc: Exception, cache: Path) -> str:
    from .vlm.openvino_vlm import UnsupportedFamily

    if isinstance(exc, UnsupportedFamily):
        return f"could not load the {what} '{ref}': {exc}"
    return (f"could not load the {what} '{ref}': {type(exc).__name__}: {str(exc).rstrip('. ')}. If this machine cannot reach the "
            f"Hugging Face Hub, download the weights once where it can (they land in {cache}/hf and "
            f"{cache}/open_clip) and copy that folder here, point the preset at a local folder, or start the "
            f"offline demo with GUIDEPOST_PRESET=tiny.")
