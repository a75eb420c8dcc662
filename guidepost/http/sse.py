"""Server-Sent Events for a streamed /process answer: hazard first, then sentences, then the whole body."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

from ..errors import GuidepostError
from ..pipeline import Done, Hazard, KeepAlive, Sentence
from ..responses import encode_objects

log = logging.getLogger(__name__)

KEEPALIVE = ": keep-alive\n\n"


def event(name: str, data: dict) -> str:
    """One SSE event; the data is one line of JSON."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def sse_answer(hazard: Hazard, events: Iterator, *, started: float, encode_done: Callable[[Done, float], dict],
               error_body: Callable[[str, str], dict], request_id: str) -> Iterator[str]:
    """The stream: `hazard` (already computed), then each pipeline event; an error after the start is an event too.
    Closing this iterator (the client went away) closes the pipeline, which stops the model within one token."""
    try:
        first_event_ms = round((time.perf_counter() - started) * 1000, 2)
        yield event("hazard", {"danger": hazard.danger, "hazards": hazard.hazards,
                               "objects": encode_objects(hazard.objects), "directions": hazard.directions,
                               "warning": hazard.warning})
        for item in events:
            if isinstance(item, Sentence):
                yield event("sentence", {"text": item.text})
            elif isinstance(item, KeepAlive):
                yield KEEPALIVE
            elif isinstance(item, Done):
                yield event("done", encode_done(item, first_event_ms))
    except GuidepostError as exc:
        yield event("error", error_body(exc.code, exc.message))
    except Exception:  # the stream has started: the status is sent, so the error travels as an event
        log.exception("unhandled error in streamed request %s", request_id)
        yield event("error", error_body("internal_error", "Internal server error; quote the request_id when "
                                                          "reporting it."))
    finally:
        events.close()
