"""An OpenAI chat request → SceneRequest without HTTP: the photo and question, history, options, and clear errors."""
from __future__ import annotations

import base64

import pytest

from guidepost.config import PROJECT_ROOT
from guidepost.errors import InvalidField
from guidepost.http.openai_decode import MAX_HISTORY_TURNS, ChatRequestError, decode_chat
from guidepost.http.openai_encode import finish_reason, usage
from guidepost.pipeline import _until_stop
from guidepost.prompts import PromptBook
from guidepost.scene import Limits, SceneResult
from tests.helpers import encode


@pytest.fixture(scope="module")
def limits():
    return Limits(max_image_mb=1, max_image_pixels=10_000_000, image_max_side=256, max_text_chars=40, max_objects=3,
                  max_images=2, prompts=PromptBook.load(PROJECT_ROOT / "prompts"))


@pytest.fixture(scope="module")
def data_url(photo):
    return "data:image/jpeg;base64," + base64.b64encode(encode(photo)).decode()


def user(*parts, text=None):
    return {"role": "user", "content": ([{"type": "text", "text": text}] if text else []) + list(parts)}


def image(url, bare=False):
    return {"type": "image_url", "image_url": url if bare else {"url": url, "detail": "low"}}


def decode(limits, messages, **fields):
    return decode_chat({"model": "guidepost", "messages": messages, **fields}, limits, "r1", 0.0)


def test_the_last_user_message_is_the_scene_and_earlier_turns_are_history(limits, data_url):
    messages = [{"role": "system", "content": "You are a pirate."},
                user(image(data_url), text="What is this?"),
                {"role": "assistant", "content": "A person <|im_end|> in a suit."},
                {"role": "tool", "content": "ignored"},
                user(image(data_url), image(data_url, bare=True), text="Is it safe?  ")]
    chat = decode(limits, messages, stream=True, stream_options={"include_usage": True}, max_tokens=7,
                  stop="Never", user="u-1", seed=3, response_format={"type": "text"},
                  guidepost={"lang": "ko", "objects": ["car"], "deadline_ms": 900})
    scene = chat.scene
    assert chat.model == "guidepost" and chat.stream and chat.include_usage
    assert len(scene.images) == 2 and max(scene.scene.size) == 256 and scene.text == "Is it safe?"
    # The system prompt is Guidepost's own; earlier images are dropped; history text is made safe to quote.
    assert scene.history == (("user", "What is this?"), ("assistant", "A person in a suit."))
    assert scene.max_new_tokens == 7 and scene.stop == ("Never",)
    assert scene.lang == "ko" and scene.objects == ["car"] and scene.deadline_ms == 900 and scene.request_id == "r1"


def test_history_keeps_the_latest_turns(limits, data_url):
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(20)]
    scene = decode(limits, turns + [user(image(data_url))]).scene
    assert len(scene.history) == MAX_HISTORY_TURNS and scene.history[-1] == ("assistant", "turn 19")


def test_a_string_content_and_max_completion_tokens(limits, data_url):
    chat = decode(limits, [{"role": "user", "content": "hello"}, user(image(base64.b64encode(
        base64.b64decode(data_url.split(",", 1)[1])).decode()))], max_completion_tokens=3, max_tokens=99)
    assert chat.scene.max_new_tokens == 3 and chat.scene.history == (("user", "hello"),) and not chat.stream


@pytest.mark.parametrize("url, code", [
    ("http://169.254.169.254/latest/meta-data/photo.jpg", "image_url_not_supported"),
    ("HTTPS://example.com/photo.jpg", "image_url_not_supported"),
    ("file:///etc/passwd", "image_url_not_supported"),
    ("data:image/jpeg,rawbytes", "invalid_base64"),
    ("data:image/jpeg;base64,!!!", "invalid_base64"),
    ("", "missing_image"),
])
def test_images_are_inline_base64_only(limits, url, code):
    with pytest.raises(ChatRequestError) as error:
        decode(limits, [user(image(url), text="hi")])
    assert error.value.code == code and error.value.param == "messages[0].content[1]"
    if code == "image_url_not_supported":
        assert "SSRF" in error.value.message


@pytest.mark.parametrize("body, code, param", [
    ({"messages": []}, "invalid_messages", "messages"),
    ({"messages": "hi"}, "invalid_messages", "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "invalid_messages", "messages[0]"),
    ({"messages": [{"role": "user", "content": "no photo"}]}, "missing_image", "messages[0].content"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "missing_image", "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "invalid_content_part",
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": 5}]}, "invalid_messages", "messages[0].content"),
])
def test_unreadable_messages_say_where(limits, body, code, param):
    with pytest.raises(ChatRequestError) as error:
        decode_chat({"model": "m", **body}, limits, "r", 0.0)
    assert (error.value.code, error.value.param) == (code, param)


@pytest.mark.parametrize("fields, field", [
    ({"max_tokens": 0}, "max_tokens"), ({"max_completion_tokens": "8"}, "max_completion_tokens"),
    ({"temperature": 3}, "temperature"), ({"temperature": True}, "temperature"), ({"n": 2}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"stop": [""]}, "stop"), ({"stream": "yes"}, "stream"),
    ({"stream_options": []}, "stream_options"), ({"guidepost": "ko"}, "guidepost"),
    ({"guidepost": {"lang": "fr"}}, "lang"), ({"guidepost": {"deadline_ms": -1}}, "deadline_ms"),
])
def test_bad_values_name_the_field(limits, data_url, fields, field):
    with pytest.raises(InvalidField) as error:
        decode(limits, [user(image(data_url), text="hi")], **fields)
    assert error.value.field == field


def test_limits_are_the_same_as_for_process(limits, data_url):
    with pytest.raises(InvalidField, match="longer than 40 characters") as error:
        decode(limits, [user(image(data_url), text="x" * 41)])
    assert error.value.field == "messages"
    with pytest.raises(InvalidField, match="at most 2 images"):
        decode(limits, [user(image(data_url), image(data_url), image(data_url))])


def test_temperature_is_accepted_and_greedy_stays(limits, data_url):
    assert decode(limits, [user(image(data_url))], temperature=0.7, top_p=0.9).scene.text == ""


@pytest.mark.parametrize("text, stop, expected", [
    ("One. Two. Three.", ("Two",), ("One. ", True)),
    ("One. Two.", ("x", "One"), ("", True)),
    ("One. Two.", (), ("One. Two.", False)),
    ("One. Two.", ("Tw", "e."), ("On", True)),
])
def test_stop_strings_cut_at_the_first(text, stop, expected):
    assert _until_stop(text, stop) == expected


def result(**fields):
    return SceneResult(**{"result": "x", "danger": False, "hazards": [], "objects": [], "objects_source": "clip",
                          "prompt": "safe", "fallback": False, **fields})


@pytest.mark.parametrize("fields, expected", [
    ({"finish_reason": "eos"}, "stop"), ({"finish_reason": "stop"}, "stop"), ({"finish_reason": "length"}, "length"),
    ({"finish_reason": "enough"}, "length"), ({"finish_reason": "deadline", "truncated": True}, "length"),
    ({"fallback": True, "reason": "timeout", "finish_reason": "deadline"}, "stop"),
    ({"fallback": True, "reason": "busy"}, "stop"),
])
def test_finish_reason(fields, expected):
    assert finish_reason(result(**fields)) == expected


def test_usage_counts_are_the_vlm_s():
    assert usage(result(usage={"prompt_tokens": 40, "completion_tokens": 9})) == {
        "prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}
    assert usage(result(fallback=True, reason="busy")) == {"prompt_tokens": 0, "completion_tokens": 0,
                                                           "total_tokens": 0}
