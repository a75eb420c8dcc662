"""A request's admission slot (GUIDEPOST_MAX_QUEUE): held while the request is answered, and while its streamed
answer flows, which may be long after the view has returned."""
from __future__ import annotations

from collections.abc import Iterator

from flask import Response, stream_with_context

from ..admission import Admission

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx passes events through unbuffered


class Slot:
    """`with Slot(admission) as slot:` takes a slot (Overloaded when none is free) and gives it back at the end,
    unless slot.stream() handed it to a streamed answer, which gives it back when the answer ends."""

    def __init__(self, admission: Admission):
        admission.take()
        self._release = admission.release

    def __enter__(self) -> "Slot":
        return self

    def __exit__(self, *exc) -> None:
        if self._release is not None:
            self._release()

    def stream(self, body: Iterator[str]) -> Response:
        """A text/event-stream response of `body` that holds the slot until it is closed."""
        response = Response(stream_with_context(body), mimetype="text/event-stream", headers=SSE_HEADERS)
        response.call_on_close(self._release)
        self._release = None
        return response
