"""The OpenAPI contract cannot drift: every route is in it, and real answers (JSON, streamed events, errors) match it."""
from __future__ import annotations

import base64
import io
import json

import pytest
import schemathesis
from schemathesis.core.failures import Failure, FailureGroup

from guidepost.http.openapi import describe, openapi_path

AUTOMATIC = {"HEAD", "OPTIONS"}  # werkzeug answers these for every GET route by itself


@pytest.fixture(scope="module")
def keyed_app(make_app):
    return make_app(api_keys="k1")


@pytest.fixture(scope="module")
def contract(keyed_app):
    return schemathesis.openapi.from_dict(describe(keyed_app))


def operations(spec: dict) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in spec["paths"].items() for method in item}


def routes(app) -> set[tuple[str, str]]:
    # openai.unknown only answers OpenAI-shaped 404/405s for other /v1 paths (described under /v1/models).
    return {(openapi_path(rule.rule), method) for rule in app.url_map.iter_rules()
            for method in rule.methods - AUTOMATIC if rule.endpoint != "openai.unknown"}


def test_every_route_and_method_is_described_and_nothing_else(keyed_app):
    spec = keyed_app.test_client().get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    assert routes(keyed_app) == operations(spec)
    assert {"/", "/process", "/metrics", "/openapi.json"} <= set(spec["paths"])


def test_the_description_follows_the_settings(make_app, keyed_app):
    spec = describe(keyed_app)
    assert spec["paths"]["/process"]["post"]["security"] and spec["paths"]["/metrics"]["get"]["security"]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    form = spec["components"]["schemas"]["ProcessForm"]["properties"]
    assert form["text"]["maxLength"] == 500 and {"en", "ko"} <= set(form["lang"]["enum"])
    open_app = make_app(metrics=False, metrics_public=True, max_text_chars=80)
    spec = describe(open_app)
    assert "/metrics" not in spec["paths"] and routes(open_app) == operations(spec)
    assert "security" not in spec["paths"]["/process"]["post"]
    assert spec["components"]["schemas"]["ProcessJson"]["properties"]["text"]["anyOf"][0]["maxLength"] == 80


def _form(jpeg, **fields):
    return {"image": (io.BytesIO(jpeg), "photo.jpg"), **fields}


KEY = {"X-API-Key": "k1"}


@pytest.mark.parametrize("name, request_args", [
    ("multipart", lambda jpeg: {"data": _form(jpeg, text="Is it safe?", lang="ko")}),
    ("multipart, client objects", lambda jpeg: {"data": _form(jpeg, objects="car, dog")}),
    ("multipart, quick", lambda jpeg: {"data": _form(jpeg, mode="quick")}),
    ("json", lambda jpeg: {"json": {"image": base64.b64encode(jpeg).decode(), "objects": ["stairs"]}}),
    ("streamed", lambda jpeg: {"data": _form(jpeg, stream="true")}),
    ("streamed by Accept", lambda jpeg: {"data": _form(jpeg, objects="car"),
                                        "headers": {"Accept": "text/event-stream"}}),
    ("400 missing image", lambda jpeg: {"data": {"text": "hi"}}),
    ("415 not an image", lambda jpeg: {"data": {"image": (io.BytesIO(b"%PDF-1.4"), "x.pdf")}}),
    ("415 media type", lambda jpeg: {"data": b"x", "content_type": "text/plain"}),
    ("422 bad field", lambda jpeg: {"data": _form(jpeg, lang="xx")}),
    ("413 too many pixels", lambda jpeg: {"data": {"image": (io.BytesIO(_huge_png()), "big.png")}}),
])
def test_process_answers_match_the_contract(keyed_app, contract, jpeg, name, request_args):
    args = request_args(jpeg)
    args["headers"] = {**KEY, **args.get("headers", {})}
    response = keyed_app.test_client().post("/process", buffered=True, **args)
    assert response.status_code < 500, response.data[:300]
    contract["/process"]["POST"].validate_response(response)
    if response.mimetype == "text/event-stream":
        names = [line.split(": ", 1)[1] for line in response.get_data(as_text=True).splitlines()
                 if line.startswith("event: ")]
        assert names[0] == "hazard" and names[-1] == "done"


def _chat(jpeg: bytes, model: str = "guidepost", **fields) -> dict:
    url = f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}"
    return {"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is ahead?"}, {"type": "image_url", "image_url": {"url": url}}]}], **fields}


@pytest.mark.parametrize("name, body", [
    ("completion", lambda jpeg: _chat(jpeg, max_tokens=8)),
    ("streamed", lambda jpeg: _chat(jpeg, stream=True, stream_options={"include_usage": True})),
    ("guidepost fields", lambda jpeg: _chat(jpeg, guidepost={"objects": ["car"], "lang": "ko"})),
    ("404 unknown model", lambda jpeg: _chat(jpeg, model="gpt-4o")),
    ("400 image URL", lambda jpeg: {**_chat(jpeg), "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/photo.jpg"}}]}]}),
    ("422 bad field", lambda jpeg: _chat(jpeg, temperature=5)),
])
def test_chat_answers_match_the_contract(keyed_app, contract, jpeg, name, body):
    response = keyed_app.test_client().post("/v1/chat/completions", json=body(jpeg), headers=KEY, buffered=True)
    assert response.status_code < 500, response.data[:300]
    contract["/v1/chat/completions"]["POST"].validate_response(response)


@pytest.mark.parametrize("path, status", [("/v1/models", 200), ("/v1/models/guidepost", 200),
                                          ("/v1/models/gpt-4o", 404)])
def test_model_answers_match_the_contract(keyed_app, contract, path, status):
    response = keyed_app.test_client().get(path, headers=KEY)
    assert response.status_code == status
    contract[openapi_path(path) if path.count("/") < 3 else "/v1/models/{name}"]["GET"].validate_response(response)


def _huge_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, "PNG")  # 81 Mpx, over GUIDEPOST_MAX_IMAGE_PIXELS, a few KB
    return buf.getvalue()


@pytest.mark.parametrize("method, path, headers", [
    ("get", "/", {}), ("get", "/static/page.js", {}), ("get", "/static/page.css", {}),
    ("get", "/static/nothing.js", {}), ("get", "/healthz", {}), ("get", "/readyz", {}), ("get", "/info", KEY),
    ("get", "/info", {}), ("get", "/metrics", KEY), ("get", "/metrics", {}), ("get", "/openapi.json", {}),
    ("post", "/process", {}), ("delete", "/healthz", {}),
])
def test_other_answers_match_the_contract(keyed_app, contract, method, path, headers):
    response = getattr(keyed_app.test_client(), method)(path, headers=headers, buffered=True)
    if response.status_code == 405:  # not in the contract: werkzeug's answer, checked for its Allow header
        assert response.headers["Allow"] and response.get_json()["error"]["code"] == "method_not_allowed"
        return
    operation = contract[openapi_path(path) if not path.startswith("/static/") else "/static/{filename}"]
    operation[method.upper()].validate_response(response)


def test_not_ready_answer_matches_the_contract(make_app, jpeg):
    app = make_app(load="lazy")  # nothing loaded: /process and /readyz say 503 with Retry-After
    operation = schemathesis.openapi.from_dict(describe(app))
    client = app.test_client()
    for path, answer in (("/process", client.post("/process", data=_form(jpeg), buffered=True)),
                         ("/readyz", client.get("/readyz", buffered=True))):
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        operation[path]["POST" if path == "/process" else "GET"].validate_response(answer)


def test_the_contract_rejects_a_broken_answer(keyed_app, contract, jpeg):
    # The checks above can fail: an answer without `danger`, or a hazard event without its warning, is refused.
    client = keyed_app.test_client()
    good = client.post("/process", data=_form(jpeg), headers=KEY, buffered=True)
    body = good.get_json()
    del body["danger"]
    broken = keyed_app.response_class(json.dumps(body), status=200, mimetype="application/json")
    with pytest.raises((Failure, FailureGroup)):
        contract["/process"]["POST"].validate_response(_as_test_response(broken, good.request))
    stream = 'event: hazard\ndata: {"danger": true, "hazards": [], "objects": [], "directions": {}}\n\n'
    broken = keyed_app.response_class(stream, status=200, mimetype="text/event-stream")
    with pytest.raises((Failure, FailureGroup)):
        contract["/process"]["POST"].validate_response(_as_test_response(broken, good.request))


def _as_test_response(response, request):
    from werkzeug.test import TestResponse

    return TestResponse(response.response, response.status, response.headers, request=request)
