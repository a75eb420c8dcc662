"""/v1/chat/completions and /v1/models through the Flask test client with the tiny models: the same pipeline as
/process, hazard first when streamed, history, stop strings, and OpenAI's error shape with /process's statuses."""
from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from tests.helpers import FakeVLM, encode, started_app
from tests.integration.test_streaming import SlowVLM, UntilCancelled, with_vlm  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def data_url(jpeg):
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


def chat(data_url, text="What is ahead?", **fields):
    content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": data_url}}]
    return {"model": "guidepost", "messages": [{"role": "user", "content": content}], **fields}


def chunks_of(data: bytes) -> list:
    """The `data:` payloads of an OpenAI stream, parsed ("[DONE]" kept as a string), and comments as None."""
    events = []
    for block in data.decode().split("\n\n"):
        if block.startswith(":"):
            events.append(None)
        elif block.startswith("data: "):
            payload = block[len("data: "):]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def assert_openai_error(response, status, code, param=None):
    assert response.status_code == status, response.data[:300]
    assert response.json == {"error": {"message": response.json["error"]["message"], "type": response.json["error"]
                                       ["type"], "code": code, "param": param}}
    return response.json["error"]


def test_models_lists_the_names_a_request_may_use(client):
    body = client.get("/v1/models").json
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["tiny-llava", "tiny", "guidepost"]
    assert client.get("/v1/models/tiny").json["id"] == "tiny"
    assert_openai_error(client.get("/v1/models/gpt-4o"), 404, "model_not_found", "model")


def test_a_completion_is_the_process_answer(client, jpeg, data_url):
    body = client.post("/v1/chat/completions", json=chat(data_url, model="tiny-llava")).json
    plain = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "text": "What is ahead?"}).json
    assert body["object"] == "chat.completion" and body["model"] == "tiny-llava"
    assert body["id"] == "chatcmpl-" + body["guidepost"]["request_id"]
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == plain["result"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    extra = body["guidepost"]
    assert {k: extra[k] for k in ("danger", "hazards", "objects", "fallback")} == {
        k: plain[k] for k in ("danger", "hazards", "objects", "fallback")} and "result" not in extra


def test_max_tokens_caps_the_generation(client, data_url):
    body = client.post("/v1/chat/completions", json=chat(data_url, max_tokens=2)).json
    assert body["usage"]["completion_tokens"] == 2


def test_stream_sends_the_warning_before_the_vlm_says_anything(client, with_vlm, data_url):
    vlm = with_vlm(SlowVLM())
    response = client.post("/v1/chat/completions", buffered=False, json=chat(
        data_url, stream=True, stream_options={"include_usage": True}, guidepost={"objects": ["bicycle"]}))
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    chunks = iter(response.response)
    role = chunks_of(next(chunks))[0]
    assert role["object"] == "chat.completion.chunk" and role["choices"][0]["delta"] == {"role": "assistant",
                                                                                        "content": ""}
    assert role["guidepost"]["hazards"] == ["bicycle"]
    warning = chunks_of(next(chunks))[0]["choices"][0]["delta"]["content"]
    assert warning == "Caution: bicycle ahead. Stop and check your surroundings."
    assert not vlm.go.is_set(), "the warning was sent while the VLM had produced nothing"
    vlm.go.set()
    rest = chunks_of(b"".join(chunks))
    response.close()
    deltas = [c["choices"][0]["delta"].get("content") for c in rest[:-3]]
    assert deltas == [" A car is on your left.", " Wait at the curb.", " Then cross slowly."]
    final, counts, done = rest[-3:]
    assert final["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert final["guidepost"]["danger"] is True and final["guidepost"]["fallback"] is False
    assert counts["choices"] == [] and counts["usage"]["completion_tokens"] == len(vlm.text.split())
    assert done == "[DONE]" and len({c["id"] for c in [role, final, counts]}) == 1


def test_a_streamed_fallback_says_the_detector_s_answer(client, with_vlm, data_url):
    class Broken(FakeVLM):
        def answer(self, inputs):
            raise RuntimeError("CUDA error: out of memory")

    with_vlm(Broken())
    chunks = chunks_of(client.post("/v1/chat/completions", json=chat(
        data_url, stream=True, guidepost={"objects": ["tree"]})).data)
    said = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert said == "I see tree. No danger detected." and chunks[-2]["guidepost"]["reason"] == "error"


def test_history_reaches_the_chat_template_without_its_images(app, client, monkeypatch, data_url):
    vlm = app.extensions["guidepost"].pipeline.vlm
    real, seen = vlm.preprocess, {}

    def preprocess(images, prompt, **kwargs):
        seen.update(images=len(images), **kwargs)
        return real(images, prompt, **kwargs)

    monkeypatch.setattr(vlm, "preprocess", preprocess)
    earlier = chat(data_url, text="What is this?")["messages"]
    body = chat(data_url, text="And now?")
    body["messages"] = [{"role": "system", "content": "Talk like a pirate."}, *earlier,
                        {"role": "assistant", "content": "A kitchen."}, *body["messages"]]
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert seen == {"images": 1, "history": (("user", "What is this?"), ("assistant", "A kitchen."))}
    # The tiny model's real chat template renders the turns before the photo and the prompt.
    inputs = real([Image.new("RGB", (32, 32))], "Now?", history=seen["history"])
    text = vlm.processor.decode(inputs["input_ids"][0])
    assert text.index("What is this?") < text.index("A kitchen.") < text.index("Now?")


def test_stop_strings_end_the_answer_and_the_generation(client, with_vlm, data_url):
    class Counting(FakeVLM):
        produced = 0

        def answer(self, inputs):
            return "Path clear. Door ahead. Stairs later. More words here."

        def before_token(self, index, stopping):
            if index == 3:  # "Door" was token 2: the pipeline asks to stop once it has read it
                stopping.stopped.wait(30)
            Counting.produced = index + 1

    with_vlm(Counting())
    body = client.post("/v1/chat/completions", json=chat(data_url, stop=["Door", "Stairs"],
                                                         guidepost={"objects": ["tree"]})).json
    assert body["choices"][0]["message"]["content"] == "Path clear."
    assert body["choices"][0]["finish_reason"] == "stop"
    assert Counting.produced <= 4, "the generation stopped at the stop string (or the token after it)"


def test_a_client_that_leaves_a_stream_frees_the_model(make_app, monkeypatch, data_url):
    app = make_app(sse_keepalive_s=0.05)
    vlm = UntilCancelled()
    monkeypatch.setattr(app.extensions["guidepost"].pipeline, "vlm", vlm)
    response = app.test_client().post("/v1/chat/completions", buffered=False,
                                      json=chat(data_url, stream=True, guidepost={"objects": ["car"]}))
    chunks = iter(response.response)
    assert chunks_of(next(chunks))[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "Caution: car" in chunks_of(next(chunks))[0]["choices"][0]["delta"]["content"]
    assert chunks_of(next(chunks)) == [None], "a keep-alive: the model is generating"
    response.close()
    assert vlm.cancelled.wait(30), "the generation was not stopped"


def test_an_error_after_the_start_is_an_error_chunk_then_done(client, with_vlm, monkeypatch, data_url):
    with_vlm(SlowVLM()).go.set()

    def broken(text, max_words):
        raise TypeError("cleaning bug")

    monkeypatch.setattr("guidepost.pipeline.clean_for_speech", broken)
    chunks = chunks_of(client.post("/v1/chat/completions", json=chat(data_url, stream=True,
                                                                     guidepost={"objects": ["tree"]})).data)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant" and chunks[-1] == "[DONE]"
    assert chunks[-2] == {"error": {"message": "Internal server error; quote the X-Request-ID when reporting it.",
                                    "type": "server_error", "code": "internal_error", "param": None}}


@pytest.mark.parametrize("body, status, code, param", [
    ({"model": "gpt-4o"}, 404, "model_not_found", "model"),
    ({"model": None}, 400, "missing_model", "model"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "http://10.0.0.1/cam.jpg"}}]}]}, 400, "image_url_not_supported", "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": "no photo"}]}, 400, "missing_image", "messages[0].content"),
    ({"max_tokens": -1}, 422, "invalid_field", "max_tokens"),
    ({"guidepost": {"lang": "xx"}}, 422, "invalid_field", "lang"),
])
def test_errors_have_openai_s_shape_and_process_s_status(client, data_url, body, status, code, param):
    error = assert_openai_error(client.post("/v1/chat/completions", json={**chat(data_url), **body}), status, code,
                                param)
    assert error["type"] == "invalid_request_error" and error["message"]


def test_image_errors_have_process_s_statuses(client, jpeg):
    def with_image(data: bytes):
        return chat("data:image/jpeg;base64," + base64.b64encode(data).decode())

    assert_openai_error(client.post("/v1/chat/completions", json=with_image(jpeg[: len(jpeg) // 3])), 400,
                        "invalid_image")
    assert_openai_error(client.post("/v1/chat/completions", json=with_image(b"%PDF-1.4 not a photo")), 415,
                        "unsupported_image")


def test_transport_errors_have_openai_s_shape(app, client):
    assert_openai_error(client.post("/v1/chat/completions", data="not json"), 400, "invalid_json")
    response = client.get("/v1/chat/completions")
    assert_openai_error(response, 405, "method_not_allowed") and response.headers["Allow"] == "POST"
    assert_openai_error(client.post("/v1/embeddings", json={}), 404, "not_found")
    limit = app.config["MAX_CONTENT_LENGTH"]
    big = client.post("/v1/chat/completions", data=b"x" * (limit + 1), content_type="application/json")
    assert "GUIDEPOST_MAX_IMAGE_MB" in assert_openai_error(big, 413, "payload_too_large")["message"]


def test_api_keys_and_readiness(make_app, model_cache, data_url):
    client = make_app(api_keys="k1").test_client()
    error = assert_openai_error(client.post("/v1/chat/completions", json=chat(data_url)), 401, "unauthorized")
    assert error["type"] == "authentication_error"
    assert_openai_error(client.get("/v1/models"), 401, "unauthorized")
    assert client.post("/v1/chat/completions", json=chat(data_url), headers={"Authorization": "Bearer k1"}).json[
        "object"] == "chat.completion"
    lazy = started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "lazy"}).test_client()
    response = lazy.post("/v1/chat/completions", json=chat(data_url))
    assert_openai_error(response, 503, "not_ready")["type"] == "server_error"
    assert response.headers["Retry-After"] == "5"


def test_the_sdk_shaped_photo_is_decoded_like_process_s(client, photo):
    png = "data:image/png;base64," + base64.b64encode(encode(photo, "PNG")).decode()
    body = client.post("/v1/chat/completions", json=chat(png)).json
    assert body["object"] == "chat.completion" and body["guidepost"]["timings_ms"]["decode"] >= 0
