"""Per-worker admission: a bounded number of /process requests in flight; the next one is refused at once."""
from __future__ import annotations

import threading
from contextlib import contextmanager

from .errors import Overloaded


class Admission:
    """Non-blocking slots around /process, so overload is refused at once instead of queueing until clients time out."""

    def __init__(self, limit: int):
        self.limit = limit  # 0: no bound (requests queue for threads and for the VLM)
        self._slots = threading.BoundedSemaphore(limit) if limit else None

    @contextmanager
    def slot(self):
        """Hold one slot for the block, or raise Overloaded (with a retry hint) when none is free."""
        if self._slots is None:
            yield
            return
        if not self._slots.acquire(blocking=False):
            raise Overloaded(f"This worker is already answering {self.limit} requests (GUIDEPOST_MAX_IN_FLIGHT); "
                             "retry shortly.", retry_after=1)
        try:
            yield
        finally:
            self._slots.release()
