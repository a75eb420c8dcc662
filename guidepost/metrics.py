"""Prometheus metrics of one worker (prometheus_client), named like vLLM's and TGI's; no Flask here.

Under gunicorn every worker writes its values to files in PROMETHEUS_MULTIPROC_DIR (prepared by the master:
guidepost/metrics_files.py) and a scrape of any worker sums them, so counts add up across workers."""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .scene import SceneResult

# Seconds. The warning's buckets are fine below a second: "within 500 ms" is what a walking user needs.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)
_WARNING_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2.5, 5, 10)
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STAGES = ("decode", "detect", "preprocess", "generate")


def multiprocess_dir() -> str | None:
    """The folder gunicorn's workers share their values through, or None in a single process."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The metric families of one app; recording takes plain values (routes, statuses, a SceneResult)."""

    content_type = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes

    def __init__(self):
        # Its own registry, so that several apps in one process (the tests) do not collide; under gunicorn the
        # values live in the shared files and exposition() reads those instead.
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("guidepost_requests", "HTTP requests answered, by route, method, status and error "
                                "code ('none' without one).", ["route", "method", "status", "code"],
                                registry=registry)
        self.refused = Counter("guidepost_requests_refused", "Requests refused with 503 (overloaded: the worker's "
                               "queue was full; not_ready: models loading).", ["code"], registry=registry)
        self.in_flight = Gauge("guidepost_requests_in_flight", "/process requests being answered now.",
                               multiprocess_mode="livesum", registry=registry)
        self.duration = Histogram("guidepost_request_duration_seconds", "Time from a request's arrival to the end "
                                  "of its answer (a streamed answer's last event included), by route.", ["route"],
                                  buckets=_REQUEST_BUCKETS, registry=registry)
        self.first_event = Histogram("guidepost_time_to_first_event_seconds", "Streamed /process answers: time from "
                                     "arrival to the hazard event (the warning a client speaks).",
                                     buckets=_WARNING_BUCKETS, registry=registry)
        self.stages = Histogram("guidepost_stage_duration_seconds", "Time /process spent in each stage: decode, "
                                "detect, preprocess, generate (waiting for the VLM included).", ["stage"],
                                buckets=_STAGE_BUCKETS, registry=registry)
        self.answers = Counter("guidepost_answers", "/process answers, by whether they were a danger warning.",
                               ["danger"], registry=registry)
        self.fallbacks = Counter("guidepost_fallbacks", "Answers from the detector alone, by reason: busy, error, "
                                 "timeout, unspeakable, quick.", ["reason"], registry=registry)
        self.truncated = Counter("guidepost_truncated_answers", "Answers cut by their deadline (the sentences "
                                 "finished before it kept).", registry=registry)
        self.prompt_tokens = Counter("guidepost_prompt_tokens", "Prompt tokens the VLM read.", registry=registry)
        self.generation_tokens = Counter("guidepost_generation_tokens", "Tokens the VLM generated.",
                                         registry=registry)
        self.ready = Gauge("guidepost_worker_ready", "1 once this worker's models are loaded, 0 before or after a "
                           "failed load (one series per gunicorn worker: the pid label).",
                           multiprocess_mode="liveall", registry=registry)
        self.load_seconds = Gauge("guidepost_model_load_seconds", "How long this worker took to load its models and "
                                  "warm up its detector (until it turned ready).", multiprocess_mode="liveall",
                                  registry=registry)
        self.ready.set(0)

    def request_done(self, route: str, method: str, status: int, code: str | None, seconds: float) -> None:
        """One answered request: its count, duration and, for a 503, the refusal."""
        self.requests.labels(route, method, str(status), code or "none").inc()
        self.duration.labels(route).observe(seconds)
        if status == 503 and code:
            self.refused.labels(code).inc()

    def answer(self, result: SceneResult, decode_ms: float) -> None:
        """What the pipeline answered: danger, fallback and its reason, truncation, tokens, stage times."""
        self.answers.labels("true" if result.danger else "false").inc()
        if result.fallback:
            self.fallbacks.labels(result.reason or "unknown").inc()
        if result.truncated:
            self.truncated.inc()
        self.prompt_tokens.inc(result.usage.get("prompt_tokens", 0))
        self.generation_tokens.inc(result.usage.get("completion_tokens", 0))
        timings = {"decode": decode_ms, **result.timings_ms}
        for stage in STAGES:
            if stage in timings:
                self.stages.labels(stage).observe(timings[stage] / 1000)

    def loaded(self, ready: bool, seconds: float | None) -> None:
        """This worker finished loading (ready or failed) after `seconds`."""
        self.ready.set(1 if ready else 0)
        if seconds is not None:
            self.load_seconds.set(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format: every worker's values under gunicorn, this process's otherwise."""
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
