"""SceneResult → the /process body (the v1 contract); shared by the HTTP view and the batch runner."""
from __future__ import annotations

import time

from .scene import SceneRequest, SceneResult


def encode_response(request: SceneRequest, result: SceneResult, model: dict, started: float) -> dict:
    """The /process JSON body; `started` is the request's time.perf_counter() start, for timings_ms.total."""
    timings = {"decode": request.decode_ms, **result.timings_ms,
               "total": round((time.perf_counter() - started) * 1000, 2)}
    body = {
        "result": result.result,
        "danger": result.danger,
        "hazards": result.hazards,
        "objects": [{"label": d.label, "score": d.score} for d in result.objects],
        "objects_source": result.objects_source,
        "prompt": result.prompt,
        "fallback": result.fallback,
        "model": model,
        "timings_ms": timings,
        "request_id": request.request_id,
    }
    if result.codes is not None:  # read requests only
        body["codes"] = result.codes
    return body
