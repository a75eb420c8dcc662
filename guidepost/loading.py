"""Builds one worker's pipeline from a deployment: sources, backend, both models, warm-up."""
from __future__ import annotations

import logging
import threading

from .backends import create_backend
from .deployment import Deployment
from .hazards import Vocabulary
from .pipeline import Pipeline
from .prompts import PromptBook
from .sources import prepare_sources

log = logging.getLogger(__name__)

# transformers' from_pretrained swaps module-level functions while it builds a model (no_init_weights and
# no_tie_weights replace torch.nn.init.* and PreTrainedModel.init_weights/tie_weights, then put back what they
# found). Two loads at once in one process can put back the other's stubs for good: later models then keep
# uninitialised (meta) or untied weights. One load at a time per process (apps in tests, tools that load twice).
_LOADING = threading.Lock()


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to do about it."""


def load_pipeline(deployment: Deployment, vocabulary: Vocabulary, prompts: PromptBook, **pipeline_options):
    """(pipeline, backend) with both models loaded, the detector warmed up and the VLM's warm-up started
    (pipeline.vlm_warm is set when it ends); ModelLoadError with the backend's hint.
    pipeline_options: the Pipeline's request settings (deadline_s, max_question_chars, vlm_slots, keepalive_s)."""
    import torch  # here, not at import: the gunicorn master never touches torch

    if deployment.torch_threads:
        torch.set_num_threads(deployment.torch_threads)
    with _LOADING:
        return _load(deployment, vocabulary, prompts, pipeline_options)


def _load(deployment: Deployment, vocabulary: Vocabulary, prompts: PromptBook, pipeline_options: dict):
    preset = deployment.preset
    sources = prepare_sources(preset, deployment.model_cache)
    backend = create_backend(deployment)
    try:
        log.info("loading detector %s (%s)", sources.detector, backend.name)
        detector = backend.load_detector(preset.detector, sources.detector, vocabulary)
    except Exception as exc:
        raise ModelLoadError(backend.load_hint("detector", sources.detector, exc)) from exc
    try:
        log.info("loading VLM %s (%s)", sources.vlm, backend.name)
        vlm = backend.load_vlm(preset.vlm, sources.vlm)
    except Exception as exc:
        raise ModelLoadError(backend.load_hint("VLM", sources.vlm, exc)) from exc
    pipeline = Pipeline(detector, vlm, vocabulary, prompts, max_words=preset.max_words, **pipeline_options)
    pipeline.warm_up()
    return pipeline, backend
