"""/metrics in one process: what each request, answer and streamed warning adds; the key and GUIDEPOST_METRICS."""
from __future__ import annotations

import io

import pytest

from tests.helpers import metric_samples


def scrape(client, headers=None) -> dict[tuple, float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    response = client.get("/metrics", headers=headers or {}, buffered=True)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    return metric_samples(response.get_data(as_text=True))


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def photo(jpeg, **fields):
    return {"image": (io.BytesIO(jpeg), "p.jpg"), **fields}


@pytest.fixture(scope="module")
def app(make_app):
    return make_app()


def test_answers_stages_and_warnings_are_counted(app, jpeg):
    client = app.test_client()
    before = scrape(client)
    assert value(before, "guidepost_worker_ready") == 1 and value(before, "guidepost_model_load_seconds") > 0
    client.post("/process", data=photo(jpeg, objects="car"), buffered=True)  # a danger answer from the VLM
    client.post("/process", data=photo(jpeg, objects="car", mode="quick"), buffered=True)
    streamed = client.post("/process", data=photo(jpeg, objects="bench", stream="true"), buffered=True)
    client.post("/process", data=photo(jpeg, lang="xx"), buffered=True)
    client.get("/no-such-page", buffered=True)
    after = scrape(client)

    def added(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"route": "/process", "method": "POST", "status": "200", "code": "none"}
    assert added("guidepost_requests_total", **ok) == 3
    assert added("guidepost_requests_total", route="/process", method="POST", status="422", code="invalid_field") == 1
    assert added("guidepost_requests_total", route="unmatched", method="GET", status="404", code="not_found") == 1
    assert added("guidepost_request_duration_seconds_count", route="/process") == 4
    assert added("guidepost_answers_total", danger="true") == 2 and added("guidepost_answers_total", danger="false") == 1
    assert added("guidepost_fallbacks_total", reason="quick") == 1
    assert added("guidepost_stage_duration_seconds_count", stage="decode") == 3
    assert added("guidepost_stage_duration_seconds_count", stage="generate") == 2  # quick answers skip the VLM
    assert added("guidepost_time_to_first_event_seconds_count") == 1 and streamed.mimetype == "text/event-stream"
    assert added("guidepost_prompt_tokens_total") > 0
    assert value(after, "guidepost_requests_in_flight") == 0


def test_a_streamed_error_is_counted_by_its_code(make_app, monkeypatch, jpeg):
    def broken(text, max_words):
        raise TypeError("a bug in speech cleaning")  # after the hazard event: the stream ends with an error event

    app = make_app()
    client = app.test_client()
    monkeypatch.setattr("guidepost.pipeline.clean_for_speech", broken)
    answer = client.post("/process", data=photo(jpeg, objects="tree", stream="true"), buffered=True)
    assert b"event: error" in answer.data
    monkeypatch.undo()
    samples = scrape(client)
    assert value(samples, "guidepost_requests_total", route="/process", method="POST", status="200",
                 code="internal_error") == 1


def test_refusals_are_counted(make_app, jpeg):
    app = make_app(load="lazy")
    client = app.test_client()
    assert client.post("/process", data=photo(jpeg), buffered=True).status_code == 503
    samples = scrape(client)
    assert value(samples, "guidepost_requests_refused_total", code="not_ready") == 1
    assert value(samples, "guidepost_worker_ready") == 0


def test_metrics_follow_the_api_key_unless_public(make_app):
    keyed = make_app(api_keys="k1").test_client()
    assert keyed.get("/metrics").status_code == 401
    scrape(keyed, {"Authorization": "Bearer k1"})
    scrape(make_app(api_keys="k1", metrics_public=True).test_client())


def test_metrics_off(make_app):
    client = make_app(metrics="off").test_client()
    assert client.get("/metrics").status_code == 404
