"""Streamed answers: the hazard event before the VLM, sentences as they come, the whole body last; deadlines; cancel."""
from __future__ import annotations

import base64
import io
import threading
import time

import pytest

from tests.helpers import FakeVLM, sse_events

SSE = {"Accept": "text/event-stream"}


class SlowVLM(FakeVLM):
    """Answers in three sentences; waits before its first token until the test says go."""

    name = "slow"

    def __init__(self, answer="A car is on your left. Wait at the curb. Then cross slowly."):
        super().__init__()
        self.text, self.go, self.started = answer, threading.Event(), threading.Event()

    def answer(self, inputs):
        return self.text

    def before_token(self, index, stopping):
        if index == 0:
            self.started.set()
            assert self.go.wait(30), "the test never let the VLM go"


class UntilCancelled(FakeVLM):
    """Generates one word, then blocks until the generation is stopped (the client went away)."""

    name = "until-cancelled"

    def __init__(self):
        super().__init__()
        self.cancelled = threading.Event()

    def answer(self, inputs):
        return "Careful. " + "more " * 100

    def before_token(self, index, stopping):
        if index == 1:
            assert stopping.stopped.wait(30), "never cancelled"
            self.cancelled.set()


class UntilDeadline(FakeVLM):
    """Two sentences, then nothing until the request's deadline has passed."""

    name = "until-deadline"

    def __init__(self, answer="One step. Two steps. Three steps never come."):
        super().__init__()
        self.text = answer

    def answer(self, inputs):
        return self.text

    def before_token(self, index, stopping):
        if index == 4:  # after "One step. Two steps."
            time.sleep(max(0.0, stopping.deadline - time.monotonic()))  # wait for the deadline itself, no guess


def post(client, jpeg, headers=None, buffered=True, **fields):
    return client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), **fields},
                       content_type="multipart/form-data", headers=headers or {}, buffered=buffered)


@pytest.fixture
def with_vlm(app, monkeypatch):
    def _use(vlm):
        monkeypatch.setattr(app.extensions["guidepost"].pipeline, "vlm", vlm)
        return vlm
    return _use


@pytest.mark.parametrize("how", ["accept", "form", "json"])
def test_events_in_order_and_done_is_the_plain_body(client, with_vlm, jpeg, how):
    vlm = with_vlm(SlowVLM())
    vlm.go.set()
    if how == "json":
        response = client.post("/process", json={"image": base64.b64encode(jpeg).decode(), "objects": ["car"],
                                                 "stream": True})
    else:
        response = post(client, jpeg, headers=SSE if how == "accept" else None, objects="car",
                        **({"stream": "true"} if how == "form" else {}))
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = sse_events([response.get_data()])
    names = [name for name, _ in events if name != "comment"]
    assert names == ["hazard", "sentence", "sentence", "sentence", "done"]
    hazard = events[0][1]
    assert set(hazard) == {"danger", "hazards", "objects", "directions", "warning"}
    assert hazard["danger"] is True and hazard["hazards"] == ["car"] and hazard["directions"] == {"car": None}
    assert hazard["warning"] == "Caution: car ahead. Stop and check your surroundings."
    assert [data["text"] for name, data in events if name == "sentence"] == [
        "A car is on your left.", "Wait at the curb.", "Then cross slowly."]
    done = events[-1][1]
    plain = post(client, jpeg, objects="car").json
    assert set(done) == set(plain) and done["result"] == plain["result"] == vlm.text
    assert done["timings_ms"]["first_event"] <= done["timings_ms"]["total"] and "first_event" not in plain["timings_ms"]


def test_the_hazard_event_leaves_before_the_vlm_says_anything(client, with_vlm, jpeg):
    vlm = with_vlm(SlowVLM())
    response = post(client, jpeg, headers=SSE, buffered=False, objects="bicycle")
    chunks = iter(response.response)
    first = sse_events([next(chunks)])
    assert first[0][0] == "hazard" and "bicycle" in first[0][1]["warning"]
    assert not vlm.go.is_set(), "the warning was sent while the VLM had produced nothing"
    vlm.go.set()
    rest = [name for name, _ in sse_events(chunks)]
    assert rest[-1] == "done" and "sentence" in rest
    response.close()


def test_a_client_that_leaves_frees_the_model(make_app, monkeypatch, jpeg, caplog):
    # The server closes the answer when a write fails because the client left.
    app = make_app(sse_keepalive_s=0.05)
    vlm = UntilCancelled()
    monkeypatch.setattr(app.extensions["guidepost"].pipeline, "vlm", vlm)
    client = app.test_client()
    response = post(client, jpeg, headers={**SSE, "X-Request-ID": "leaver-1"}, buffered=False, objects="car")
    chunks = iter(response.response)
    assert sse_events([next(chunks)])[0][0] == "hazard"
    assert sse_events([next(chunks)]) == [("comment", "keep-alive")], "the model is generating"
    with caplog.at_level("INFO", logger="guidepost.pipeline"):
        response.close()
        assert vlm.cancelled.wait(30), "the generation was not stopped"
    assert any("leaver-1" in r.getMessage() and "client gone" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(app.extensions["guidepost"].pipeline, "vlm", SlowVLM())
    app.extensions["guidepost"].pipeline.vlm.go.set()
    assert post(client, jpeg, objects="car").json["fallback"] is False, "the next request got the model"


def test_a_client_gone_mid_generation_stops_it_within_a_token(client, with_vlm, monkeypatch, jpeg, caplog):
    # Under gunicorn the generation polls the client's socket every token (guidepost.http.disconnect).
    gone = threading.Event()
    monkeypatch.setattr("guidepost.http.api.client_gone", lambda environ: gone.is_set)

    class LeavesAtTheSecondToken(FakeVLM):
        def answer(self, inputs):
            return "one two three four five six"

        def before_token(self, index, stopping):
            if index == 1:
                gone.set()  # the client hangs up while the second token is being computed

    with_vlm(LeavesAtTheSecondToken())
    with caplog.at_level("INFO", logger="guidepost.pipeline"):
        post(client, jpeg, headers={"X-Request-ID": "gone-2"})
    assert any("gone-2" in r.getMessage() and "client gone, generation stopped after 2 tokens" in r.getMessage()
               for r in caplog.records)


def test_keep_alive_comments_while_the_vlm_is_quiet(make_app, monkeypatch, jpeg):
    app = make_app(sse_keepalive_s=0.05)
    vlm = SlowVLM()
    monkeypatch.setattr(app.extensions["guidepost"].pipeline, "vlm", vlm)
    response = post(app.test_client(), jpeg, headers=SSE, buffered=False)
    seen = []
    for chunk in response.response:
        seen += sse_events([chunk])
        if seen[-1] == ("comment", "keep-alive"):
            vlm.go.set()
    assert seen[0][0] == "hazard" and ("comment", "keep-alive") in seen and seen[-1][0] == "done"
    response.close()


def test_an_error_after_the_start_is_an_event(client, with_vlm, monkeypatch, jpeg):
    with_vlm(SlowVLM()).go.set()

    def broken(text, max_words):
        raise TypeError("cleaning bug")
    monkeypatch.setattr("guidepost.pipeline.clean_for_speech", broken)
    response = post(client, jpeg, headers={**SSE, "X-Request-ID": "err-1"}, objects="tree")
    events = sse_events([response.get_data()])
    assert [name for name, _ in events][0] == "hazard" and events[-1][0] == "error"
    assert events[-1][1] == {"error": {"code": "internal_error", "request_id": "err-1",
                                       "message": "Internal server error; quote the request_id when reporting it."}}


def deadline(app) -> str:
    """A deadline the detector fits in with room to spare (what it needs depends on the machine's load)."""
    return str(app.extensions["guidepost"].pipeline.min_deadline_ms + 300)


def test_the_deadline_keeps_finished_sentences(app, client, with_vlm, jpeg):
    with_vlm(UntilDeadline())
    body = post(client, jpeg, objects="tree", deadline_ms=deadline(app)).json
    assert body["result"] == "One step. Two steps." and body["truncated"] is True and body["fallback"] is False


def test_a_deadline_with_nothing_said_falls_back(app, client, with_vlm, jpeg):
    with_vlm(UntilDeadline("Nothing finished before the deadline"))
    body = post(client, jpeg, objects="car", headers={"X-Deadline-Ms": deadline(app)}).json
    assert body["fallback"] is True and body["reason"] == "timeout" and body["result"].startswith("Caution: car")


@pytest.mark.parametrize("value", ["1", "0", "soon", "-5"])
def test_a_deadline_too_short_or_malformed_is_422(app, client, jpeg, value):
    response = post(client, jpeg, deadline_ms=value)
    assert response.status_code == 422 and "deadline_ms" in response.json["error"]["message"]
    minimum = app.extensions["guidepost"].pipeline.min_deadline_ms
    if value == "1":
        assert f"at least {minimum} ms" in response.json["error"]["message"]
    assert response.mimetype == "application/json"


def test_streamed_client_mistakes_are_plain_json(client, jpeg):
    response = post(client, jpeg, headers=SSE, lang="fr")
    assert response.status_code == 422 and response.mimetype == "application/json"
    assert post(client, jpeg, stream="maybe").status_code == 422
