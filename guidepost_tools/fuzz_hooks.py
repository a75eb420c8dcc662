"""schemathesis hooks for fuzzing a Guidepost server: real photographs for the `image/*` parts of /process, so
generated requests reach past image decoding. Use with SCHEMATHESIS_HOOKS=guidepost_tools.fuzz_hooks (README)."""
from __future__ import annotations

import base64
import io

import schemathesis
from hypothesis import strategies as st

from .photos import jpeg_bytes, sample_photo

_SIZE = (160, 120)  # small: the fuzzer sends many; the server's decoding and models are the same at any size


def _png(name: str) -> bytes:
    buf = io.BytesIO()
    sample_photo(name, _SIZE).save(buf, "PNG")
    return buf.getvalue()


_JPEGS = [jpeg_bytes(sample_photo(name, _SIZE)) for name in ("coffee", "astronaut")]
_PNGS = [_png("chelsea")]

# Multipart `image` parts (encoding contentType image/*) and JSON base64 images (format image-base64).
schemathesis.openapi.media_type("image/jpeg", st.sampled_from(_JPEGS))
schemathesis.openapi.media_type("image/png", st.sampled_from(_PNGS))
schemathesis.openapi.format("image-base64", st.sampled_from([base64.b64encode(data).decode() for data in _JPEGS + _PNGS]))
# OpenAI chat image parts: data URLs.
schemathesis.openapi.format("image-data-url", st.sampled_from(
    [f"data:image/jpeg;base64,{base64.b64encode(data).decode()}" for data in _JPEGS]
    + [f"data:image/png;base64,{base64.b64encode(data).decode()}" for data in _PNGS]))

# A deadline shorter than a worker's detector needs is a 422 by design: /info limits.min_deadline_ms, measured by
# each worker at start-up, which no schema can state. Schema-valid deadlines below this floor are raised to it.
DEADLINE_FLOOR_MS = 5000


def _raised(value):
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < DEADLINE_FLOOR_MS:
        return DEADLINE_FLOOR_MS
    if isinstance(value, str) and value.strip().isdigit() and 1 <= int(value) < DEADLINE_FLOOR_MS:
        return str(DEADLINE_FLOOR_MS)
    return value


# A chat's photo must be in its LAST user message, which no schema can state: a schema-valid chat body gets one more
# user message holding a photo, so valid requests reach the models instead of a 400 missing_image.
_PHOTO_MESSAGE = {"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{base64.b64encode(_JPEGS[0]).decode()}"}}]}


def _valid_body(case) -> bool:
    from schemathesis import GenerationMode
    from schemathesis.core.parameters import ParameterLocation

    body = case.meta.components.get(ParameterLocation.BODY) if case.meta else None
    return body is not None and body.mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(context, case, kwargs):
    """Raise a too-short deadline (body field or X-Deadline-Ms header) to the floor, in every phase; put the photo
    last in a valid chat body."""
    if case.operation.path == "/v1/chat/completions" and isinstance(case.body, dict) and _valid_body(case) \
            and isinstance(case.body.get("messages"), list):
        case.body = {**case.body, "messages": [*case.body["messages"], _PHOTO_MESSAGE]}
    if isinstance(case.body, dict) and "deadline_ms" in case.body:
        case.body = {**case.body, "deadline_ms": _raised(case.body["deadline_ms"])}
    options = case.body.get("guidepost") if isinstance(case.body, dict) else None
    if isinstance(options, dict) and "deadline_ms" in options:  # /v1/chat/completions carries it here
        case.body = {**case.body, "guidepost": {**options, "deadline_ms": _raised(options["deadline_ms"])}}
    if case.headers and "X-Deadline-Ms" in case.headers:
        case.headers = {**case.headers, "X-Deadline-Ms": _raised(case.headers["X-Deadline-Ms"])}


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but one schemathesis 4.32 raises against itself: "schema-violating request accepted" for a
    form whose parts come from the image/* strategy, which its own generator classifies as a positive test case
    (the negated part was replaced by a real photo before sending)."""
    from schemathesis.core.failures import AcceptedNegativeData

    described = getattr(getattr(getattr(case.meta, "phase", None), "data", None), "description", None)
    return not (isinstance(failure, AcceptedNegativeData) and described == "Positive test case")
