"""/metrics from a 2-worker gunicorn: every worker's counts add up, and a dead worker's live gauges leave."""
from __future__ import annotations

import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from guidepost_tools.http_client import wait_ready
from tests.e2e.conftest import API_KEY
from tests.helpers import metric_samples, metric_total

pytestmark = pytest.mark.e2e
KEY = {"X-API-Key": API_KEY}


def scrape(base: str) -> dict[tuple, float]:
    response = requests.get(f"{base}/metrics", headers=KEY, timeout=10)
    assert response.status_code == 200, response.text
    return metric_samples(response.text)


def readyz_by_worker(base: str, limit: int = 50) -> Counter:
    """GET /readyz on new connections, four at a time, until both workers have answered. One after another, Linux
    tends to wake the same worker for every connection (the last one back in epoll_wait); at once, both take some."""
    def worker(_) -> int:
        return requests.get(f"{base}/readyz", headers={"Connection": "close"}, timeout=10).json()["worker"]
    seen: Counter = Counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(limit):
            seen.update(pool.map(worker, range(4)))
            if len(seen) == 2 and sum(seen.values()) >= 6:
                break
    return seen


def test_counts_add_up_across_workers(keyed_server, jpeg):
    base = keyed_server.url
    before = scrape(base)
    seen = readyz_by_worker(base)
    assert len(seen) == 2, f"only one worker answered: {seen}"
    photo = {"image": ("p.jpg", jpeg, "image/jpeg")}
    for fields in ({"objects": "car"}, {"objects": "car", "mode": "quick"}, {"lang": "xx"}):
        requests.post(f"{base}/process", files=photo, data=fields, headers={**KEY, "Connection": "close"}, timeout=60)
    with requests.post(f"{base}/process", files=photo, data={"stream": "true"}, headers=KEY, stream=True,
                       timeout=60) as streamed:
        assert b"event: done" in streamed.raw.read()

    def added(name, **labels):
        return metric_total(after, name, **labels) - metric_total(before, name, **labels)

    # A request is counted once its answer has gone out, an instant after the client has it: scrape until all are.
    deadline = time.monotonic() + 30
    while True:
        after = scrape(base)
        counted = added("guidepost_requests_total", route="/process") + added("guidepost_requests_total", route="/readyz")
        if counted >= 4 + sum(seen.values()) or time.monotonic() > deadline:
            break

    # One worker saw only its own requests: only the shared files give every worker's.
    assert added("guidepost_requests_total", route="/readyz", status="200") == sum(seen.values())
    assert added("guidepost_requests_total", route="/process", status="200") == 3
    assert added("guidepost_requests_total", route="/process", status="422", code="invalid_field") == 1
    assert added("guidepost_answers_total") == 3 and added("guidepost_fallbacks_total", reason="quick") == 1
    assert added("guidepost_time_to_first_event_seconds_count") == 1
    for pid in seen:
        assert metric_total(after, "guidepost_worker_ready", pid=str(pid)) == 1
        assert metric_total(after, "guidepost_model_load_seconds", pid=str(pid)) > 0
    assert metric_total(after, "guidepost_requests_in_flight") == 0


def test_a_dead_workers_gauges_leave_and_its_counts_stay(keyed_server):
    base = keyed_server.url
    # The master's children: its workers and the front's nginx.
    workers = [child.pid for child in psutil.Process(keyed_server.proc.pid).children() if child.name() != "nginx"]
    victim = workers[0]
    before = scrape(base)
    assert metric_total(before, "guidepost_worker_ready", pid=str(victim)) == 1
    process = psutil.Process(victim)
    os.kill(victim, signal.SIGTERM)  # a graceful exit: gunicorn's child_exit hook runs, then a new worker starts
    process.wait(timeout=60)
    wait_ready(base, 180, workers=2)  # the replacement has loaded its models: the next tests see two ready workers
    after = scrape(base)
    assert not [key for key in after if key[0] == "guidepost_worker_ready" and ("pid", str(victim)) in key[1]]
    assert metric_total(after, "guidepost_worker_ready") == 2
    assert metric_total(after, "guidepost_requests_total") >= metric_total(before, "guidepost_requests_total"), \
        "the dead worker's counts are still summed"
