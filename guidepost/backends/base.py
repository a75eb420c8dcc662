"""What every backend provides: the two model loaders, a description for /info and a hint when loading fails."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # presets validate backend names against this package: no import cycle at run time
    from ..hazards import Vocabulary
    from ..presets import DetectorSpec, VLMSpec


class Backend(ABC):
    """One runtime for both models; subclasses supply the loaders and what /info shows."""

    name = "base"

    def __init__(self, deployment):
        self.deployment = deployment
        self.cache: Path = Path(deployment.model_cache)

    @abstractmethod
    def load_detector(self, spec: DetectorSpec, source: str, vocabulary: Vocabulary):
        """The CLIP detector over the vocabulary."""

    @abstractmethod
    def load_vlm(self, spec: VLMSpec, source: str):
        """The VLM (a guidepost.vlm.base.VLM)."""

    @abstractmethod
    def describe(self) -> dict:
        """Where and how the models run, for /info: device, dtype, and the backend's own settings."""

    def health(self) -> dict | None:
        """The state of a service outside this process the models depend on, for /readyz (None: there is none);
        its "ready" key says whether requests can be served as configured."""
        return None

    def adapter_info(self) -> dict | None:
        """The LoRA adapter merged into the VLM (name, folder, hash, manifest), for /info; None without one."""
        adapter = self.deployment.adapter
        return adapter.describe() if adapter is not None else None

    def load_hint(self, what: str, source: str, exc: Exception) -> str:
        """What to tell an operator when a model failed to load: the error, then how to get weights here."""
        return (f"could not load the {what} '{source}': {type(exc).__name__}: {str(exc).rstrip('. ')}. If this "
                f"machine cannot reach the Hugging Face Hub, download the weights once where it can (they land in "
                f"{self.cache}/hf and {self.cache}/open_clip) and copy that folder here, point the preset at a local "
                f"folder, or start the offline demo with GUIDEPOST_PRESET=tiny.")
