"""Per-worker admission: a bounded number of requests in /process (or at the VLM); the next one is turned away at once."""
from __future__ import annotations

import threading

from .errors import Overloaded


class Admission:
    """Non-blocking slots, so overload is answered at once instead of queueing until clients time out."""

    def __init__(self, limit: int):
        self.limit = limit  # 0: no bound (requests queue for threads and for the VLM)
        self._slots = threading.BoundedSemaphore(limit) if limit else None

    def try_acquire(self) -> bool:
        """Take a slot if one is free; never waits."""
        return self._slots is None or self._slots.acquire(blocking=False)

    def release(self) -> None:
        """Give a slot back."""
        if self._slots is not None:
            self._slots.release()

    def take(self) -> None:
        """Take a slot, or raise Overloaded (with a retry hint) when none is free; release() gives it back."""
        if not self.try_acquire():
            raise Overloaded(f"This worker is already answering {self.limit} requests (GUIDEPOST_MAX_QUEUE); "
                             "retry shortly.", retry_after=1)
