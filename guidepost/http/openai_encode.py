"""SceneResult → OpenAI's chat.completion object, the pipeline's events → chat.completion.chunk events (hazard
first), and OpenAI's error shape."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

from ..errors import GuidepostError
from ..pipeline import Done, Hazard, KeepAlive, Sentence
from ..responses import encode_objects
from ..scene import SceneResult
from .errors import http_status
from .openai_decode import ChatRequest
from .sse import KEEPALIVE

log = logging.getLogger(__name__)

DONE = "data: [DONE]\n\n"


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict:
    """OpenAI's error shape: {"error": {"message", "type", "code", "param"}}."""
    kind = {401: "authentication_error", 429: "rate_limit_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def finish_reason(result: SceneResult) -> str:
    """`length` when a cap cut the VLM's answer (max_tokens, the word cap, the deadline), else `stop`."""
    cut = result.truncated or result.finish_reason in ("length", "enough")
    return "length" if cut and not result.fallback else "stop"


def usage(result: SceneResult) -> dict:
    """The VLM's real token counts (zero when the detector answered alone)."""
    prompt, completion = result.usage.get("prompt_tokens", 0), result.usage.get("completion_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(chat: ChatRequest, result: SceneResult, body: dict, created: int | None = None) -> dict:
    """The chat.completion object; `body` is what /process would answer, which rides along as `guidepost`."""
    return {"id": completion_id(body["request_id"]), "object": "chat.completion", "created": created or int(time.time()),
            "model": chat.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.result, "refusal": None},
                         "finish_reason": finish_reason(result), "logprobs": None}],
            "usage": usage(result), "guidepost": _extra(body)}


def completion_id(request_id: str) -> str:
    """chatcmpl-<request id>: the same id a client sees in X-Request-ID and the server's log."""
    return f"chatcmpl-{request_id}"


def stream_chunks(chat: ChatRequest, hazard: Hazard, events: Iterator, *, started: float,
                  encode_done: Callable[[Done, float], dict]) -> Iterator[str]:
    """The streamed answer: role, then the warning as soon as detection is done, then each sentence, a last chunk
    with finish_reason (and usage when asked), `[DONE]`. An error after the start is a `data: {"error": ...}` chunk.
    Closing it (the client went away) closes the pipeline, which stops the model."""
    head = {"id": completion_id(chat.scene.request_id), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": chat.model}

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        return _data({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                      **extra})

    try:
        first_event_ms = round((time.perf_counter() - started) * 1000, 2)
        yield chunk({"role": "assistant", "content": ""}, guidepost={
            "danger": hazard.danger, "hazards": hazard.hazards, "directions": hazard.directions,
            "objects": encode_objects(hazard.objects), "warning": hazard.warning})
        said = bool(hazard.warning)
        if said:
            yield chunk({"content": hazard.warning})
        for item in events:
            if isinstance(item, Sentence):
                yield chunk({"content": (" " if said else "") + item.text})
                said = True
            elif isinstance(item, KeepAlive):
                yield KEEPALIVE
            elif isinstance(item, Done):
                result = item.result
                if result.fallback and result.result != hazard.warning:  # the detector's answer, not yet said
                    yield chunk({"content": (" " if said else "") + result.result})
                yield chunk({}, finish_reason(result), guidepost=_extra(encode_done(item, first_event_ms)))
                if chat.include_usage:
                    yield _data({**head, "choices": [], "usage": usage(result)})
    except GuidepostError as exc:
        yield _data(error_body(http_status(exc), exc.code, exc.message))
    except Exception:  # the stream has started: the status is sent, so the error travels as a chunk
        log.exception("unhandled error in streamed request %s", chat.scene.request_id)
        yield _data(error_body(500, "internal_error", "Internal server error; quote the X-Request-ID when reporting it."))
    finally:
        events.close()
    yield DONE


def _extra(body: dict) -> dict:
    """The /process body without `result` (that is the message's content): danger, hazards, fallback, timings..."""
    return {key: value for key, value in body.items() if key != "result"}


def _data(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
