"""An OpenAI chat-completions body → SceneRequest: the last user message's photo and text, earlier turns as history,
then the same field checks and image limits as /process (scene.decode_fields)."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ..errors import InvalidField, MalformedRequest
from ..prompts import sanitize_question
from ..scene import Limits, SceneRequest, decode_fields
from .decode import b64decode_image

MAX_HISTORY_TURNS = 8  # earlier turns passed to the chat template; older ones are left out
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
GUIDEPOST_FIELDS = ("objects", "lang", "task", "mode", "deadline_ms")  # the `guidepost` object of a request
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # base64 has no ':', so a bare base64 string has no scheme
_SSRF = ("Image URLs are not fetched: a server that fetches URLs for anonymous clients can be made to reach "
         "internal services (SSRF). Send the photo inline as a base64 data URL (data:image/jpeg;base64,...).")


class ChatRequestError(MalformedRequest):
    """The chat request cannot be read; `param` names the part of it at fault, as OpenAI's errors do."""

    def __init__(self, message: str, *, code: str, param: str | None = None):
        super().__init__(message, code=code)
        self.param = param


@dataclass(frozen=True)
class ChatRequest:
    """A decoded chat request: the model name asked for, how to answer, and the scene."""

    model: str
    stream: bool
    include_usage: bool  # stream_options.include_usage: a last chunk with the token counts
    scene: SceneRequest


def json_body(body) -> dict:
    """The parsed body, which must be a JSON object."""
    if not isinstance(body, dict):
        raise ChatRequestError("The body is not a JSON object.", code="invalid_json")
    return body


def requested_model(body: dict) -> str:
    """The `model` field (required, as OpenAI's API has it)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ChatRequestError("Field 'model' is required: GET /v1/models lists the names this server answers to.",
                               code="missing_model", param="model")
    return model.strip()


def decode_chat(body: dict, limits: Limits, request_id: str, received: float,
                deadline_header: str | None = None) -> ChatRequest:
    """The whole request, cheap checks first, images decoded last; unknown fields are ignored (SDKs send many)."""
    turns = [_turn(index, message) for index, message in enumerate(_messages(body))]
    last = max((i for i, (role, _, _) in enumerate(turns) if role == "user"), default=None)
    if last is None:
        raise ChatRequestError("The messages hold no user message: send the photo in one.", code="missing_image",
                               param="messages")
    _, text, images = turns[last]
    if not images:
        raise ChatRequestError("The last user message has no image: send the photo as an image_url part with a "
                               "base64 data URL.", code="missing_image", param=f"messages[{last}].content")
    if len(text) > limits.max_text_chars:
        raise InvalidField("messages", f"(the last user message's text) is longer than {limits.max_text_chars} "
                                       "characters")
    options, max_tokens, stop = _options(body), _max_tokens(body), _stop(body)
    _check_sampling(body)
    model, stream, include_usage = requested_model(body), _flag(body, "stream"), _include_usage(body)
    raw = {"images": [_image_bytes(url, where) for url, where in images], "text": text,
           **{key: options.get(key) for key in GUIDEPOST_FIELDS}}
    if raw["deadline_ms"] in (None, "") and deadline_header:
        raw["deadline_ms"] = deadline_header
    scene = decode_fields(raw, limits, request_id, received)
    history = tuple((role, sanitize_question(said, limits.max_text_chars)) for role, said, _ in turns[:last]
                    if role in ("user", "assistant") and said.strip())[-MAX_HISTORY_TURNS:]
    return ChatRequest(model, stream, include_usage,
                       dataclasses.replace(scene, history=history, max_new_tokens=max_tokens, stop=stop))


def _messages(body: dict) -> list:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError("Field 'messages' is required: a list of messages, the last user one with the photo.",
                               code="invalid_messages", param="messages")
    return messages


def _turn(index: int, message) -> tuple[str, str, list[tuple[str, str]]]:
    """(role, text, [(image url, where)]) of one message; content is a string or a list of text/image_url parts."""
    where = f"messages[{index}]"
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise ChatRequestError(f"{where} must be an object with a role ({', '.join(ROLES)}).",
                               code="invalid_messages", param=where)
    content = message.get("content")
    if content is None or isinstance(content, str):
        return message["role"], (content or "").strip(), []
    if not isinstance(content, list):
        raise ChatRequestError(f"{where}.content must be a string or a list of parts.", code="invalid_messages",
                               param=f"{where}.content")
    texts, images = [], []
    for number, part in enumerate(content):
        here = f"{where}.content[{number}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"].strip())
        elif kind == "image_url":
            url = part.get("image_url")
            images.append((url.get("url") if isinstance(url, dict) else url, here))  # a bare string, as Ollama takes
        else:
            raise ChatRequestError(f"{here} must be a text part or an image_url part; other kinds ({kind}) are not "
                                   "supported.", code="invalid_content_part", param=here)
    return message["role"], " ".join(text for text in texts if text), images


def _image_bytes(url, where: str) -> bytes:
    if not isinstance(url, str) or not url.strip():
        raise ChatRequestError(f"{where}.image_url must hold a base64 data URL.", code="missing_image", param=where)
    url = url.strip()
    if _SCHEME.match(url) and not url[:5].lower() == "data:":
        raise ChatRequestError(_SSRF, code="image_url_not_supported", param=where)
    if url[:5].lower() == "data:" and ";base64," not in url[:100].lower():
        raise ChatRequestError("Only base64 data URLs are accepted (data:image/jpeg;base64,...).",
                               code="invalid_base64", param=where)
    try:
        return b64decode_image(url)
    except MalformedRequest:
        raise ChatRequestError(f"The image in {where} is not valid base64.", code="invalid_base64",
                               param=where) from None


def _options(body: dict) -> dict:
    options = body.get("guidepost")
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise InvalidField("guidepost", f"must be an object with any of {list(GUIDEPOST_FIELDS)}")
    return options


def _flag(body: dict, name: str) -> bool:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidField(name, "must be true or false")
    return bool(value)


def _include_usage(body: dict) -> bool:
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidField("stream_options", "must be an object")
    return _flag(options or {}, "include_usage")


def _max_tokens(body: dict) -> int | None:
    """max_completion_tokens (the newer name), else max_tokens; at most the preset's, applied by the pipeline."""
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidField(name, "must be a whole number of tokens, at least 1")
    return value


def _check_sampling(body: dict) -> None:
    """One answer, greedy: n must be 1; temperature is checked, then has no effect."""
    if body.get("n") not in (None, 1):
        raise InvalidField("n", "must be 1: Guidepost gives one answer")
    temperature = body.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not 0 <= temperature <= 2):
        raise InvalidField("temperature", "must be a number from 0 to 2 (Guidepost always decodes greedily)")


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    items = [stop] if isinstance(stop, str) else stop
    if stop is not None and (not isinstance(items, list) or len(items) > 4
                             or not all(isinstance(item, str) and item for item in items)):
        raise InvalidField("stop", "must be a string or a list of up to 4 non-empty strings")
    return tuple(items or ())
