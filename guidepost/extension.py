"""The Flask extension: one worker's settings, deployment and models, with an explicit loading lifecycle."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask

from .admission import Admission
from .config import Settings
from .deployment import Deployment, resolve_deployment
from .hazards import Vocabulary
from .loading import ModelLoadError, load_pipeline
from .prompts import PromptBook
from .scene import Limits

log = logging.getLogger(__name__)


class Guidepost:
    """Holds what a worker serves with; models load once per process, as GUIDEPOST_LOAD says (start())."""

    def __init__(self, settings: Settings, app: Flask | None = None):
        # Cheap, pure-Python parts load at once so a bad preset or template fails start-up.
        self.settings = settings
        self.deployment: Deployment = resolve_deployment(settings)
        self.vocabulary = Vocabulary.load(settings.presets_dir / "vocabulary.yaml")
        self.prompts = PromptBook.load(settings.prompts_dir)
        self.limits = Limits(max_image_mb=settings.max_image_mb, max_image_pixels=settings.max_image_pixels,
                             image_max_side=self.deployment.preset.image_max_side,
                             max_text_chars=settings.max_text_chars, max_objects=settings.max_objects,
                             max_images=settings.max_images, prompts=self.prompts)
        # Per worker (each process builds its own app): requests taken into /process, and those let at the VLM.
        self.admission = Admission(settings.max_queue)
        self.vlm_slots = Admission(settings.max_in_flight)
        self.deadline_s = settings.generate_timeout_s or self.deployment.preset.deadline_ms / 1000
        self.state = "loading"  # loading → ready | failed
        self.error: str | None = None
        self.pipeline = None
        self.backend = None
        self._outcome: tuple[bool, float] | None = None  # (ready, seconds) once loading has finished
        self._loaded = threading.Event()
        self._on_loaded: list[Callable[[bool, float], None]] = []  # told (ready, seconds) before readiness shows
        self._start_lock = threading.Lock()
        self._started = False
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register on the app; with GUIDEPOST_LOAD=lazy (or a server that never called start()), the first request starts loading."""
        app.extensions["guidepost"] = self
        app.before_request(lambda: self._begin(background=True))

    @property
    def preset(self):
        """The preset being served."""
        return self.deployment.preset

    @property
    def ready(self) -> bool:
        """Whether every model is loaded and requests can be served."""
        return self.state == "ready"

    def start(self) -> None:
        """Begin loading as GUIDEPOST_LOAD says: background (a thread), eager (now; ModelLoadError on failure), lazy (not yet)."""
        mode = self.settings.load
        if mode == "eager":
            self.ensure_loaded()
        elif mode == "background":
            self._begin(background=True)

    def ensure_loaded(self) -> None:
        """Load synchronously if nobody started loading yet, else wait, VLM warm-up included; raise ModelLoadError on
        failure. (A server turns ready before its VLM's warm-up ends; tools and tests start from a warm VLM.)"""
        self._begin(background=False)
        self.wait()
        if self.state == "failed":
            raise ModelLoadError(self.error)
        self.pipeline.vlm_warm.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading has finished (ready or failed); True if it finished."""
        return self._loaded.wait(timeout)

    def when_loaded(self, callback: Callable[[bool, float], None]) -> None:
        """Call callback(ready, seconds) once loading has finished, before /readyz can say so; now if it has."""
        with self._start_lock:
            if self._outcome is None:
                self._on_loaded.append(callback)
                return
        callback(*self._outcome)

    def _begin(self, background: bool) -> None:
        with self._start_lock:
            if self._started:
                return
            self._started = True
        if background:
            threading.Thread(target=self._load, name="guidepost-model-loader", daemon=True).start()
        else:
            self._load()

    def _load(self) -> None:
        start = time.perf_counter()
        state = "failed"
        try:
            self.pipeline, self.backend = load_pipeline(
                self.deployment, self.vocabulary, self.prompts, deadline_s=self.deadline_s,
                max_question_chars=self.settings.max_text_chars, vlm_slots=self.vlm_slots,
                keepalive_s=self.settings.sse_keepalive_s)
            state = "ready"
            log.info("preset '%s' ready in %.1f s (%s)", self.preset.name, time.perf_counter() - start,
                     self.backend.describe())
        except Exception as exc:
            self.error = str(exc)
            log.exception("loading preset '%s' failed", self.preset.name)
        finally:
            self._finish(state, time.perf_counter() - start)

    def _finish(self, state: str, seconds: float) -> None:
        """Tell the when_loaded callbacks, then publish the state (so a ready worker's metrics already say so)."""
        with self._start_lock:
            self._outcome = (state == "ready", seconds)
            callbacks, self._on_loaded = self._on_loaded, []
        for callback in callbacks:
            callback(*self._outcome)
        self.state = state
        self._loaded.set()

    def model_info(self) -> dict:
        """Model ids and backend (and the adapter's name when one is served), as every /process answer reports them."""
        pipeline = self.pipeline
        info = {"vlm": pipeline.vlm.name if pipeline else self.preset.vlm.id,
                "detector": pipeline.detector.name if pipeline else self.preset.detector.arch,
                "backend": self.deployment.backend}
        if self.deployment.adapter is not None:  # which fine-tuned VLM answered (base vs tuned comparisons)
            info["adapter"] = self.deployment.adapter.name
        return info

    def runtime(self) -> dict:
        """Device, dtype, threads and backend settings: what is running, or what the preset asks for before loading."""
        if self.backend is not None:
            return self.backend.describe()
        adapter = self.deployment.adapter
        return {"device": self.deployment.device, "dtype": self.deployment.dtype, "torch_threads": None,
                "openvino": None, "adapter": adapter.describe() if adapter is not None else None}
