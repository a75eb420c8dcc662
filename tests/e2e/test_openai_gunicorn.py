"""The OpenAI API both ways through real gunicorns on 127.0.0.1: the official `openai` SDK against a Guidepost (tiny
preset), and a front with the openai backend generating on that Guidepost: answers, streaming, the detector's answer
while the upstream is stopped, and readiness flipping as it goes and comes back."""
from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time

import openai
import pytest
import requests
import yaml

from guidepost.config import PROJECT_ROOT
from guidepost_tools.http_client import wait_ready
from guidepost_tools.loadtest.server import LocalServer
from tests.helpers import presets_dir, started_app

pytestmark = pytest.mark.e2e

KEY = "sdk-key"
QUESTION = "What is ahead?"


@pytest.fixture(scope="module")
def upstream(model_cache, tmp_path_factory):
    """A Guidepost on the tiny preset that needs an API key; it is also the front's upstream."""
    env = {"GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(model_cache), "GUIDEPOST_API_KEYS": KEY,
           # The front's rendered prompt (instructions + the user's question) arrives here as the question.
           "GUIDEPOST_MAX_TEXT_CHARS": "2000"}
    with LocalServer(env, tmp_path_factory.mktemp("upstream") / "server.log", ready_timeout_s=120) as local:
        yield local


@pytest.fixture(scope="module")
def front(upstream, model_cache, tmp_path_factory):
    """A Guidepost with backend: openai pointed at the upstream, checking it every 0.2 s."""
    folder = tmp_path_factory.mktemp("front")
    preset = yaml.safe_load((PROJECT_ROOT / "models" / "tiny.yaml").read_text())
    preset.update(backend="openai")
    preset["vlm"]["upstream"] = {"check_s": 0.2, "timeout_s": 2}
    env = {"GUIDEPOST_PRESET": "front", "GUIDEPOST_PRESETS_DIR": str(presets_dir(folder / "models", front=yaml.safe_dump(
        preset))), "GUIDEPOST_MODEL_CACHE": str(model_cache), "GUIDEPOST_UPSTREAM_URL": f"{upstream.url}/v1",
           "GUIDEPOST_UPSTREAM_MODEL": "tiny-llava", "GUIDEPOST_UPSTREAM_API_KEY": KEY}
    with LocalServer(env, folder / "server.log", ready_timeout_s=120) as local:
        yield local


def sdk(server, key=KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120)


def photo_message(data: bytes, text=QUESTION) -> list[dict]:
    url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    return [{"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}]


def process(server, jpeg, **fields) -> dict:
    response = requests.post(f"{server.url}/process", files={"image": ("p.jpg", jpeg, "image/jpeg")}, data=fields,
                             headers={"X-API-Key": KEY}, timeout=120)
    assert response.status_code == 200, response.text[:300]
    return response.json()


def readyz(server) -> tuple[int, dict]:
    response = requests.get(f"{server.url}/readyz", timeout=10)
    return response.status_code, response.json()


def until(condition, what: str, timeout_s: float = 60):
    """Poll condition() until it returns something truthy (a server's state changing), at most timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_the_sdk_gets_the_answer_process_gives(upstream, jpeg):
    completion = sdk(upstream).chat.completions.create(model="tiny", messages=photo_message(jpeg))
    plain = process(upstream, jpeg, text=QUESTION)
    assert completion.choices[0].message.content == plain["result"], "the same pipeline, greedy, one worker"
    assert completion.choices[0].finish_reason in ("stop", "length") and completion.model == "tiny"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    extra = completion.model_dump()["guidepost"]
    assert extra["danger"] == plain["danger"] and extra["hazards"] == plain["hazards"] and extra["fallback"] is False
    assert completion.id == "chatcmpl-" + extra["request_id"]


def test_the_sdk_streams_every_chunk(upstream, jpeg):
    stream = sdk(upstream).chat.completions.create(model="guidepost", messages=photo_message(jpeg), stream=True,
                                                   stream_options={"include_usage": True})
    chunks = list(stream)
    first, last, counts = chunks[0], chunks[-2], chunks[-1]
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    verdict = first.model_dump()["guidepost"]
    said = [chunk.choices[0].delta.content for chunk in chunks[1:-2]]
    if verdict["danger"]:
        assert said[0] == verdict["warning"], "the hazard warning is the first thing said"
    assert all(said) and last.choices[0].finish_reason in ("stop", "length") and last.choices[0].delta.content is None
    assert counts.choices == [] and counts.usage.completion_tokens > 0
    assert len({chunk.id for chunk in chunks}) == 1
    plain = process(upstream, jpeg, text=QUESTION)
    assert "".join(said).startswith(plain["result"].split(". ")[0]), "the streamed answer starts as the plain one"


def test_the_readme_sdk_example_says_the_warning_first(upstream, jpeg, tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg)
    run = subprocess.run([sys.executable, str(PROJECT_ROOT / "examples" / "openai_stream.py"), upstream.url,
                          str(photo)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "GUIDEPOST_KEY": KEY})
    assert run.returncode == 0, run.stderr
    verdict = process(upstream, jpeg, mode="quick")
    assert run.stdout.strip() and (not verdict["danger"] or run.stdout.startswith(verdict["result"]))


def test_the_sdk_lists_the_models(upstream):
    assert [model.id for model in sdk(upstream).models.list()] == ["tiny-llava", "tiny", "guidepost"]


def test_the_sdk_raises_its_own_exceptions(upstream, jpeg):
    client = sdk(upstream)
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="gpt-4o", messages=photo_message(jpeg))
    assert error.value.code == "model_not_found" and error.value.param == "model"
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="tiny", messages=photo_message(jpeg[: len(jpeg) // 3]))
    assert error.value.code == "invalid_image"
    ssrf = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://169.254.169.254/a.jpg"}}]}]
    with pytest.raises(openai.BadRequestError, match="SSRF"):
        client.chat.completions.create(model="tiny", messages=ssrf)
    with pytest.raises(openai.AuthenticationError) as error:
        sdk(upstream, key="wrong").chat.completions.create(model="tiny", messages=photo_message(jpeg))
    assert error.value.code == "unauthorized" and error.value.request_id, "X-Request-ID reaches the SDK"


def test_a_front_generates_on_the_upstream(front, jpeg):
    status, body = readyz(front)
    assert status == 200 and body["upstream"]["state"] == "ready" and body["upstream"]["model"] == "tiny-llava"
    answer = process(front, jpeg)
    assert answer["fallback"] is False and answer["model"] == {"vlm": "tiny-llava", "detector": "tiny-clip",
                                                               "backend": "openai"}
    assert answer["timings_ms"]["generate"] > 0
    chunks = list(sdk(front).chat.completions.create(model="tiny-llava", messages=photo_message(jpeg), stream=True))
    final = chunks[-1].model_dump()["guidepost"]
    assert final["fallback"] is False and final["danger"] == answer["danger"]
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks)


def test_a_front_asking_for_a_model_the_upstream_lacks(upstream, model_cache, jpeg):
    app = started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "eager", "backend": "openai",
                       "upstream_url": f"{upstream.url}/v1", "upstream_model": "llava-13b", "upstream_api_key": KEY})
    client = app.test_client()
    response = until(lambda: (r := client.get("/readyz")).json["upstream"]["state"] != "checking" and r,
                     "the first check")
    assert response.status_code == 503 and response.json["status"] == "upstream_not_ready"
    assert response.json["upstream"]["state"] == "model_missing" and "tiny-llava" in response.json["upstream"]["error"]
    body = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}).json
    assert body["fallback"] is True and body["reason"] == "error", "the upstream's 404 is the detector's answer"
    app.extensions["guidepost"].backend.vlm.unwatch()


def test_the_front_answers_while_the_upstream_is_down_and_is_ready_again_when_it_is_back(front, upstream, jpeg):
    detector = process(front, jpeg, mode="quick")
    upstream.stop()
    answer = process(front, jpeg)
    assert answer["fallback"] is True and answer["reason"] == "error"
    assert (answer["result"], answer["danger"]) == (detector["result"], detector["danger"]), "the hazard stays"
    streamed = list(sdk(front).chat.completions.create(model="guidepost", messages=photo_message(jpeg),
                                                            stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == detector["result"]
    status, body = until(lambda: (state := readyz(front))[0] == 503 and state, "the front to say not ready")
    assert body["upstream"]["state"] == "unreachable" and body["status"] == "upstream_not_ready"

    upstream.start()  # the same port
    wait_ready(front.url, 60)
    assert process(front, jpeg)["fallback"] is False
