"""Closed-loop load: N virtual users send /process requests back to back, bounded in count and in time."""
from __future__ import annotations

import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from tqdm import tqdm

from ..http_client import error_of
from .payloads import Payload


@dataclass(frozen=True)
class Level:
    """One phase of a run: `concurrency` users until `max_requests` were sent or `max_seconds` passed."""

    concurrency: int
    max_requests: int
    max_seconds: float
    timed: bool = False  # a soak: meant to end by time, max_requests is only a safety cap


class LoadRunner:
    """Sends the payloads in turn to one server's /process and records what each request got."""

    def __init__(self, url: str, payloads: list[Payload], *, timeout_s: float = 60, max_backoff_s: float = 1.0,
                 api_key: str | None = None, new_connections: bool = False, progress: bool = True,
                 stream: bool = False):
        self.url = url.rstrip("/")
        self.path = urlsplit(self.url).path + "/process"
        self.payloads = payloads
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.headers = {"X-API-Key": api_key} if api_key else {}
        if new_connections:  # a phone that reconnects for every photo: each request is accepted anew by a worker
            self.headers["Connection"] = "close"
        if stream:  # ask for Server-Sent Events; a server without them answers JSON, timed as one event
            self.headers["Accept"] = "text/event-stream"
        self.progress = progress

    def run(self, level: Level, t0: float) -> tuple[list[dict], float]:
        """Run one level; its records (start times relative to t0) and its wall time in seconds."""
        tickets = itertools.count()
        lock = threading.Lock()
        records: list[dict] = []
        start = time.perf_counter()
        deadline = start + level.max_seconds
        bar = tqdm(total=None if level.timed else level.max_requests, desc=f"concurrency {level.concurrency}",
                   unit="req", disable=not self.progress, leave=False)

        def user() -> None:
            # One connection per user, kept alive unless new_connections. urllib3 rather than requests: requests
            # adds about 0.7 ms of its own to every request here, which would be counted as server overhead.
            pool = urllib3.connection_from_url(self.url, maxsize=1, block=True, retries=False)
            while True:
                with lock:
                    n = next(tickets)
                if n >= level.max_requests or time.perf_counter() >= deadline:
                    return
                record = self.send(pool, self.payloads[n % len(self.payloads)], t0)
                with lock:
                    records.append({"level": level.concurrency, "n": n, **record})
                    bar.update()
                if record["status"] == 503:
                    # A well-behaved client waits as Retry-After asks (capped) before its next request.
                    pause = min(record["retry_after"] or self.max_backoff_s, self.max_backoff_s)
                    time.sleep(max(0.0, min(pause, deadline - time.perf_counter())))

        try:
            with ThreadPoolExecutor(max_workers=level.concurrency, thread_name_prefix="load-user") as pool:
                for future in [pool.submit(user) for _ in range(level.concurrency)]:
                    future.result()
        finally:
            bar.close()
        wall = time.perf_counter() - start
        return sorted(records, key=lambda r: r["n"]), wall

    def send(self, pool: urllib3.HTTPConnectionPool, payload: Payload, t0: float) -> dict:
        """POST one body; status, latency (to the whole answer and to its first event), error code, Retry-After and
        the server's own timings."""
        record = {"photo": payload.photo, "t_s": None, "latency_ms": None, "first_event_ms": None, "status": None,
                  "code": None, "retry_after": None, "fallback": None, "danger": None, "timings_ms": None}
        started = time.perf_counter()
        record["t_s"] = round(started - t0, 4)
        try:
            response = pool.request("POST", self.path, body=payload.body, timeout=self.timeout_s, retries=False,
                                    preload_content=False, headers={**self.headers, "Content-Type": payload.content_type})
            content_type = response.headers.get("Content-Type", "")
            if content_type.startswith("text/event-stream"):
                body, first = _read_events(response, started)
            else:
                data = response.read()
                body, first = (json.loads(data) if content_type.startswith("application/json") else None), None
            response.release_conn()
        except urllib3.exceptions.TimeoutError:
            record["code"] = "timeout"
        except urllib3.exceptions.HTTPError:  # refused, reset, closed without an answer
            record["code"] = "connection_error"
        except ValueError:  # a JSON content type with a body that is not JSON: a proxy's error page
            record["status"], record["code"] = response.status, f"http_{response.status}"
        else:
            record["status"] = response.status
            if response.status == 200 and isinstance(body, dict) and "timings_ms" in body:
                record.update(timings_ms=body["timings_ms"], fallback=body["fallback"], danger=body["danger"])
            elif response.status == 200:
                record["code"] = (body or {}).get("error", {}).get("code", "unexpected_body") \
                    if isinstance(body, dict) else "unexpected_body"
            else:
                record["code"], _ = error_of(response.status, json.dumps(body) if body is not None else "")
                record["retry_after"] = _seconds(response.headers.get("Retry-After"))
        record["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        if record["timings_ms"] is not None:  # the first thing a client can speak: the hazard event, or the answer
            record["first_event_ms"] = first if first is not None else record["latency_ms"]
        return record


def _read_events(response, started: float) -> tuple[dict | None, float | None]:
    """Read a Server-Sent Events answer as it arrives: (the done or error event's body, ms to the first event)."""
    block, first, body = "", None, None
    for chunk in response.stream(2**16):
        block += chunk.decode("utf-8", "replace")
        while "\n\n" in block:
            event, block = block.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in event.split("\n") if not line.startswith(":"))
            if first is None and fields:
                first = round((time.perf_counter() - started) * 1000, 2)
            if fields.get("event") in ("done", "error"):
                body = json.loads(fields["data"])
    return body, first


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: not sent by Guidepost
        return None
