"""Vision-language generation."""
from .torch_vlm import GenerationTimeout, TorchVLM

__all__ = ["GenerationTimeout", "TorchVLM"]
