"""Vision-language generation behind one interface (guidepost.vlm.base.VLM)."""
from .base import VLM, GenerationTimeout, StopWhen

__all__ = ["VLM", "GenerationTimeout", "StopWhen"]
