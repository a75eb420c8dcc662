"""/process end to end through the Flask test client, with tiny models loaded by the real registry."""
from __future__ import annotations

import base64
import io
import json

import pytest

from tests.helpers import FakeVLM, encode

KEYS = {"result", "danger", "hazards", "directions", "objects", "objects_source", "prompt", "fallback", "reason",
        "truncated", "model", "timings_ms", "request_id"}


def post_image(client, data: bytes, **fields):
    return client.post("/process", data={"image": (io.BytesIO(data), "photo.jpg"), **fields},
                       content_type="multipart/form-data")


def test_multipart_photo_runs_clip_and_returns_the_contract(client, jpeg):
    response = post_image(client, jpeg)
    assert response.status_code == 200, response.json
    body = response.json
    assert set(body) == KEYS
    assert body["objects_source"] == "clip"
    assert body["prompt"] == ("danger" if body["danger"] else "safe")
    assert isinstance(body["result"], str) and body["result"]
    assert body["model"] == {"vlm": "tiny-llava", "detector": "tiny-clip", "backend": "torch"}
    assert {"decode", "detect", "preprocess", "generate", "total"} <= set(body["timings_ms"])
    assert body["objects"], "the seeded tiny CLIP puts labels above the tiny preset's threshold"
    assert all(0 < o["score"] <= 1 for o in body["objects"])
    scores = [o["score"] for o in body["objects"]]
    assert scores == sorted(scores, reverse=True)
    assert response.headers["X-Request-ID"] == body["request_id"]


def test_client_objects_skip_clip_and_drive_the_danger_prompt(client, jpeg):
    body = post_image(client, jpeg, objects=["automobile", "dog"]).json
    assert body["objects_source"] == "client"
    assert [o["label"] for o in body["objects"]] == ["car", "dog"]
    assert all(o["score"] is None for o in body["objects"])
    assert body["danger"] is True and body["hazards"] == ["car", "dog"] and body["prompt"] == "danger"


def test_comma_separated_objects(client, jpeg):
    body = post_image(client, jpeg, objects="chair, cup").json
    assert [o["label"] for o in body["objects"]] == ["chair", "cup"]
    assert body["danger"] is False and body["prompt"] == "safe"


def test_text_and_korean(client, jpeg):
    response = post_image(client, jpeg, text="무엇이 보이나요?", lang="ko", objects="계단")
    assert response.status_code == 200
    body = response.json
    assert body["hazards"] == ["stairs"]
    # The tiny VLM never names the hazard, so the Korean warning leads the answer.
    assert body["result"].startswith("주의") and "계단" in body["result"]


def test_danger_answer_always_leads_with_the_warning(client, jpeg):
    body = post_image(client, jpeg, objects="car").json
    assert body["fallback"] is False and body["result"].startswith("Caution: car ahead.")


@pytest.mark.parametrize("prefix", ["", "data:image/jpeg;base64,"])
def test_json_body_with_base64_or_data_url(client, jpeg, prefix):
    payload = {"image": prefix + base64.b64encode(jpeg).decode(), "text": "Is it safe?", "objects": ["bus"]}
    response = client.post("/process", json=payload)
    assert response.status_code == 200, response.json
    assert response.json["danger"] is True and response.json["hazards"] == ["bus"]


def test_client_request_id_is_echoed(client, jpeg):
    response = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}, headers={"X-Request-ID": "abc-123"})
    assert response.json["request_id"] == "abc-123"


def test_health_ready_info(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ready"
    info = client.get("/info").json
    assert info["preset"] == "tiny" and info["device"] == "cpu" and info["model"]["vlm"] == "tiny-llava"
    assert "tiny" in info["presets"] and "default" in info["presets"]
    assert {"torch", "transformers", "open_clip_torch", "flask"} <= set(info["versions"])
    assert info["languages"] == ["en", "ko"]


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["message"] and body["error"]["request_id"]
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize("fields,status,code", [
    ({"lang": "fr"}, 422, "invalid_field"),
    ({"task": "poem"}, 422, "invalid_field"),
    ({"text": "x" * 501}, 422, "invalid_field"),
    ({"objects": ",".join(["cup"] * 51)}, 422, "invalid_field"),
    ({"objects": "x" * 65}, 422, "invalid_field"),
])
def test_bad_field_values_are_422(client, jpeg, fields, status, code):
    assert_error(post_image(client, jpeg, **fields), status, code)


@pytest.mark.parametrize("payload,status,code", [
    ({"text": "no image"}, 400, "missing_image"),
    ({"image": "not base64!!"}, 400, "invalid_base64"),
    ({"image": 42}, 400, "missing_image"),
    ({"image": base64.b64encode(b"plain text").decode()}, 415, "unsupported_image"),
    ({"image": "", "objects": ["car"]}, 400, "missing_image"),
])
def test_bad_json_bodies(client, payload, status, code):
    assert_error(client.post("/process", json=payload), status, code)


def test_bad_json_field_types(client, jpeg):
    image = base64.b64encode(jpeg).decode()
    assert_error(client.post("/process", json={"image": image, "objects": [1, 2]}), 422, "invalid_field")
    assert_error(client.post("/process", json={"image": image, "text": ["a"]}), 422, "invalid_field")
    assert_error(client.post("/process", json={"image": image, "lang": 3}), 422, "invalid_field")


def test_hostile_json(client, jpeg):
    assert_error(client.post("/process", data="[" * 200_000, content_type="application/json"), 400, "invalid_json")
    image = base64.b64encode(jpeg).decode()
    lone_surrogate = '{"image": "%s", "objects": ["car", "\\udc80"]}' % image
    assert_error(client.post("/process", data=lone_surrogate, content_type="application/json"), 422, "invalid_field")
    bad_text = '{"image": "%s", "text": "hi \\ud800"}' % image
    assert_error(client.post("/process", data=bad_text, content_type="application/json"), 422, "invalid_field")


def test_oversized_form_field_is_413_with_an_honest_message(client, jpeg):
    response = post_image(client, jpeg, text="x" * 600_000)
    assert_error(response, 413, "payload_too_large")
    assert "GUIDEPOST_MAX_IMAGE_MB" not in response.json["error"]["message"]


def test_text_sent_as_a_file_is_422(client, jpeg):
    response = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "text": (io.BytesIO(b"hi"), "q.txt")},
                           content_type="multipart/form-data")
    assert_error(response, 422, "invalid_field")


def test_malformed_requests(client):
    assert_error(client.post("/process", data="{not json", content_type="application/json"), 400, "invalid_json")
    assert_error(client.post("/process", json=[1, 2]), 400, "invalid_json")
    assert_error(client.post("/process", data=b"\xff\xd8", content_type="image/jpeg"), 415, "unsupported_media_type")
    assert_error(client.post("/process", data={"other": "x"}, content_type="multipart/form-data"), 400, "missing_image")
    text_image = client.post("/process", data={"image": "photo.jpg"}, content_type="multipart/form-data")
    assert_error(text_image, 400, "missing_image")
    assert "-F image=@" in text_image.json["error"]["message"]


def test_not_an_image_and_truncated(client, jpeg):
    assert_error(post_image(client, b"%PDF-1.7 fake"), 415, "unsupported_image")
    assert_error(post_image(client, jpeg[:2000]), 400, "invalid_image")
    assert_error(post_image(client, b""), 400, "empty_image")


def test_unknown_route_and_method(client):
    assert_error(client.get("/nope"), 404, "not_found")
    wrong = client.get("/process")
    assert_error(wrong, 405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]


def test_body_and_pixel_limits_are_413(make_app, photo):
    app = make_app(max_image_mb=0.05, max_image_pixels=200_000)
    client = app.test_client()
    big = encode(photo.resize((1500, 1500)), "PNG")
    assert_error(post_image(client, big), 413, "payload_too_large")
    huge_but_small = encode(photo.resize((600, 600)), "JPEG", quality=5)
    assert len(huge_but_small) < 0.05 * 2**20
    assert_error(post_image(client, huge_but_small), 413, "image_too_large")
    # The server goes on serving after every rejection.
    assert post_image(client, encode(photo.resize((200, 200)), "JPEG")).status_code == 200


def test_api_keys(make_app, jpeg):
    client = make_app(api_keys="s3cret,other").test_client()
    assert_error(post_image(client, jpeg), 401, "unauthorized")
    assert_error(client.get("/info", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    assert client.get("/healthz").status_code == 200, "probes stay open"
    ok = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}, headers={"Authorization": "Bearer other"})
    assert ok.status_code == 200
    assert client.get("/info", headers={"X-API-Key": "s3cret"}).status_code == 200


def test_several_images_reach_the_vlm_in_order_and_clip_sees_the_first(app, client, monkeypatch, photo):
    pipeline = app.extensions["guidepost"].pipeline
    seen = {}
    real_preprocess, real_detect = pipeline.vlm.preprocess, pipeline.detector.detect

    def preprocess(images, prompt):
        seen["vlm"] = images
        return real_preprocess(images, prompt)

    def detect(image):
        seen["clip"] = image
        return real_detect(image)

    monkeypatch.setattr(pipeline.vlm, "preprocess", preprocess)
    monkeypatch.setattr(pipeline.detector, "detect", detect)
    first, second = photo.resize((320, 200)), photo.resize((120, 160))
    response = client.post("/process", data={"image": [(io.BytesIO(encode(first)), "a.jpg"),
                                                       (io.BytesIO(encode(second)), "b.jpg")]},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.json
    assert [image.size for image in seen["vlm"]] == [(320, 200), (120, 160)]
    assert seen["clip"].size == (320, 200)


def test_json_image_list(client, jpeg):
    payload = base64.b64encode(jpeg).decode()
    response = client.post("/process", json={"image": [payload, "data:image/jpeg;base64," + payload]})
    assert response.status_code == 200, response.json


def test_too_many_images_is_a_422(client, jpeg, app):
    limit = app.extensions["guidepost"].limits.max_images
    files = [(io.BytesIO(jpeg), f"{n}.jpg") for n in range(limit + 1)]
    response = client.post("/process", data={"image": files}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_field" and "image" in response.json["error"]["message"]


class ReadingVLM(FakeVLM):
    """A VLM that reads two container codes, the second with a check digit that does not match."""

    name = "reader"

    def __init__(self):
        super().__init__()
        self.prompts = []

    def preprocess(self, images, prompt):
        self.prompts.append(prompt)
        return super().preprocess(images, prompt)

    def answer(self, inputs) -> str:
        return "MSCU 663987 0. CSQU 305438 4."


def test_read_task_returns_container_codes_and_speaks_a_bad_check_digit(app, client, jpeg, monkeypatch):
    reader = ReadingVLM()
    monkeypatch.setattr(app.extensions["guidepost"].pipeline, "vlm", reader)
    body = post_image(client, jpeg, task="read", objects="sign").json
    assert "container codes" in reader.prompts[-1] and "Read the text" in reader.prompts[-1]
    assert body["codes"] == [
        {"code": "MSCU6639870", "owner": "MSC", "category": "U", "serial": "663987", "check_digit": 0, "valid": True},
        {"code": "CSQU3054384", "owner": "CSQ", "category": "U", "serial": "305438", "check_digit": 4, "valid": False}]
    assert body["result"] == ("MSCU 663987 0. CSQU 305438 4. "
                              "The check digit of CSQU3054384 does not match; read it again.")
    streamed = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "task": "read", "objects": "sign",
                                              "stream": "true"}).get_data(as_text=True)
    sentences = [json.loads(block.split("data: ", 1)[1])["text"] for block in streamed.split("\n\n")
                 if block.startswith("event: sentence")]
    assert sentences[-1] == "The check digit of CSQU3054384 does not match; read it again.", "streamed clients hear it"
    assert "codes" not in post_image(client, jpeg, objects="sign").json, "codes belong to read answers only"


def test_read_task_still_warns_first_and_in_korean(app, client, jpeg, monkeypatch):
    monkeypatch.setattr(app.extensions["guidepost"].pipeline, "vlm", ReadingVLM())
    body = post_image(client, jpeg, task="read", objects="truck").json
    assert body["danger"] is True and body["result"].startswith("Caution: truck ahead.")
    assert body["result"].index("MSCU 663987 0") > body["result"].index("Caution")
    korean = post_image(client, jpeg, task="read", lang="ko", objects="sign").json
    assert korean["result"].endswith("CSQU3054384의 검증 숫자가 맞지 않습니다. 다시 읽어 주세요.")


def test_read_task_with_the_real_tiny_model(client, jpeg):
    body = post_image(client, jpeg, task="read").json
    assert body["fallback"] is False and isinstance(body["codes"], list)
    bad = post_image(client, jpeg, task="translate")
    assert bad.status_code == 422 and "read" in bad.json["error"]["message"]
