"""Installed library versions, for /info and for cache keys that must change when a library does."""
from __future__ import annotations

from importlib import metadata


def version(package: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
