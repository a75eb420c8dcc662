"""Where the preset's models load from: a hub id, a local folder, or a tiny random model built here first."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import tiny
from .presets import Preset


@dataclass(frozen=True)
class ModelSources:
    """What open_clip and from_pretrained are given for the detector and the VLM."""

    detector: str  # an open_clip architecture, or local-dir:<folder>
    vlm: str  # a Hugging Face id, or a folder


def prepare_sources(preset: Preset, cache: Path) -> ModelSources:
    """The preset's model sources, with any tiny model built (once) into cache/tiny so that loading finds it."""
    detector, vlm = preset.detector, preset.vlm
    return ModelSources(
        detector=f"local-dir:{tiny.ensure_built(detector.arch, cache)}" if detector.source == "tiny" else detector.arch,
        vlm=str(tiny.ensure_built(vlm.id, cache)) if vlm.source == "tiny" else vlm.id)
