"""The openai backend: CLIP detects here (torch), an OpenAI-compatible server generates (vLLM, Ollama, OVMS...)."""
from __future__ import annotations

from ..vlm.upstream import UpstreamVLM
from .torch_backend import TorchBackend


class OpenAIBackend(TorchBackend):
    """Detection stays local, so a hazard never waits on the network; the VLM is the upstream's, reached over HTTP."""

    name = "openai"

    def __init__(self, deployment):
        super().__init__(deployment)
        self.upstream = deployment.upstream
        self.vlm: UpstreamVLM | None = None

    def load_vlm(self, spec, source):
        """A client of the upstream, checked now and every upstream.check_s seconds (source is not used)."""
        self.vlm = UpstreamVLM(spec, self.upstream, self.deployment.upstream_api_key.get_secret_value())
        self.vlm.watch()
        return self.vlm

    def describe(self) -> dict:
        """The detector's device, dtype and threads, and the upstream's URL and model."""
        return {**super().describe(), "upstream": {"url": self.upstream.url, "model": self.upstream.model}}

    def health(self) -> dict | None:
        """The upstream's state at its last check."""
        return self.vlm.health() if self.vlm is not None else None

    def load_hint(self, what, source, exc):
        """The upstream's client needs no weights: say what failed and where it points."""
        if what == "VLM":
            return f"could not set up the client of the upstream {self.upstream.url}: {type(exc).__name__}: {exc}"
        return super().load_hint(what, source, exc)
