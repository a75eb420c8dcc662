"""GET /metrics and the hooks that record every request (GUIDEPOST_METRICS); the metric families are in metrics.py."""
from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app, g, request

from ..scene import SceneRequest, SceneResult

bp = Blueprint("metrics", __name__)
_KEY = "guidepost.metrics"


def register_metrics(app: Flask) -> None:
    """Serve /metrics and record requests, unless GUIDEPOST_METRICS is off (then prometheus_client is not imported)."""
    extension = app.extensions["guidepost"]
    if not extension.settings.metrics:
        return
    from ..metrics import Metrics

    metrics = app.extensions[_KEY] = Metrics()
    extension.when_loaded(metrics.loaded)
    app.before_request(_started)
    app.after_request(_record_when_closed)
    app.register_blueprint(bp)


def _metrics():
    return current_app.extensions.get(_KEY)


@bp.get("/metrics")
def metrics_endpoint():
    """Prometheus text format: every worker's counts summed under gunicorn."""
    from .api import check_api_key

    if not current_app.extensions["guidepost"].settings.metrics_public:
        check_api_key()
    metrics = _metrics()
    return Response(metrics.exposition(), content_type=metrics.content_type)


def _started() -> None:
    g.metrics_started = time.perf_counter()
    if request.endpoint == "api.process":
        _metrics().in_flight.inc()
        g.metrics_in_flight = True


def _record_when_closed(response):
    """Count the request once its answer has been sent (a streamed answer's last event included)."""
    metrics, state = _metrics(), g._get_current_object()  # the stream outlives the request context
    route = request.url_rule.rule if request.url_rule else "unmatched"  # never the raw path: bounded labels
    method, status = request.method, response.status_code

    def record() -> None:
        if state.pop("metrics_in_flight", False):
            metrics.in_flight.dec()
        started = state.get("metrics_started", time.perf_counter())
        metrics.request_done(route, method, status, state.get("error_code"), time.perf_counter() - started)

    response.call_on_close(record)
    return response


def record_answer(scene: SceneRequest, result: SceneResult) -> None:
    """The pipeline's answer to a /process request (called by the view where the answer is known)."""
    metrics = _metrics()
    if metrics is not None:
        metrics.answer(result, scene.decode_ms)


def watch_first_event(chunks: Iterator[str], started: float) -> Iterator[str]:
    """A streamed answer's chunks, unchanged; the first one's time (the hazard event) is recorded as it leaves."""
    metrics = _metrics()
    if metrics is None:
        return chunks
    return _timed_first(chunks, started, metrics)


def _timed_first(chunks: Iterator[str], started: float, metrics) -> Iterator[str]:
    try:
        first = next(chunks, None)
        if first is None:
            return
        metrics.first_event.observe(time.perf_counter() - started)
        yield first
        yield from chunks
    finally:
        chunks.close()  # closing this stream (the client went away) must still stop the generation
