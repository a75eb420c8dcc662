"""SceneResult → the /process body (the v1 contract); shared by the HTTP view and the batch runner."""
from __future__ import annotations

import time

from .hazards import Detection
from .scene import SceneRequest, SceneResult


def encode_response(request: SceneRequest, result: SceneResult, model: dict, started: float,
                    first_event_ms: float | None = None) -> dict:
    """The /process JSON body; `started` is the request's time.perf_counter() start, for timings_ms.total;
    first_event_ms (streamed answers) is when the hazard event left."""
    timings = {"decode": request.decode_ms, **result.timings_ms,
               "total": round((time.perf_counter() - started) * 1000, 2)}
    if first_event_ms is not None:
        timings["first_event"] = first_event_ms
    body = {
        "result": result.result,
        "danger": result.danger,
        "hazards": result.hazards,
        "directions": result.directions,
        "objects": encode_objects(result.objects),
        "objects_source": result.objects_source,
        "prompt": result.prompt,
        "fallback": result.fallback,
        "reason": result.reason,
        "truncated": result.truncated,
        "model": model,
        "timings_ms": timings,
        "request_id": request.request_id,
    }
    if result.codes is not None:  # read requests only
        body["codes"] = result.codes
    return body


def encode_objects(objects: list[Detection]) -> list[dict]:
    """Detections as the API shows them: label and score (None for client labels)."""
    return [{"label": d.label, "score": d.score} for d in objects]
