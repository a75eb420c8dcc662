"""CLIP zero-shot detection over the vocabulary."""
from .clip import ClipDetector

__all__ = ["ClipDetector"]
