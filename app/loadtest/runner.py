"""Closed-loop load: N virtual users send /process requests back to back, bounded in count and in time."""
from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from tqdm import tqdm

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
                 api_key: str | None = None, progress: bool = True):
        self.url = url.rstrip("/")
        self.payloads = payloads
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.headers = {"X-API-Key": api_key} if api_key else {}
        self.progress = progress

    def run(self, level: Level, t0: float) -> tuple[list[dict], float]:
        """Run one level; its records (start times relative to t0) and its wall time in seconds."""
        tickets = itertools.count()
        lock = threading.Lock()
        records: list[dict] = []
        start = time.perf_counter()
        deadline = start + level.max_seconds
        bar = tqdm(total=None if level.timed else level.max_requests, desc=f"concurrency {level.concurrency}", unit="req", disable=not self.progress,
                   leave=False)

        def user() -> None:
            session = requests.Session()  # one kept-alive connection per user, like a phone app
            while True:
                with lock:
                    n = next(tickets)
                if n >= level.max_requests or time.perf_counter() >= deadline:
                    return
                record = self.send(session, self.payloads[n % len(self.payloads)], t0)
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

    def send(self, session: requests.Session, payload: Payload, t0: float) -> dict:
        """POST one body; status, latency, error code, Retry-After and the server's own timings."""
        record = {"photo": payload.photo, "t_s": None, "latency_ms": None, "status": None, "code": None,
                  "retry_after": None, "fallback": None, "timings_ms": None}
        started = time.perf_counter()
        record["t_s"] = round(started - t0, 4)
        try:
            response = session.post(f"{self.url}/process", data=payload.body, timeout=self.timeout_s,
                                     headers={**self.headers, "Content-Type": payload.content_type})
            body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else None
        except requests.Timeout:
            record["code"] = "timeout"
        except requests.RequestException as exc:
            record["code"] = "connection_error" if isinstance(exc, requests.ConnectionError) else "client_error"
        except ValueError:  # a JSON content type with a body that is not JSON: a proxy's error page
            record["status"], record["code"] = response.status_code, f"http_{response.status_code}"
        else:
            record["status"] = response.status_code
            if response.status_code == 200 and isinstance(body, dict) and "timings_ms" in body:
                record["timings_ms"], record["fallback"] = body["timings_ms"], body["fallback"]
            elif response.status_code == 200:
                record["code"] = "unexpected_body"
            else:
                error = body.get("error") if isinstance(body, dict) else None
                record["code"] = error["code"] if isinstance(error, dict) else f"http_{response.status_code}"
                record["retry_after"] = _seconds(response.headers.get("Retry-After"))
        record["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return record


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: not sent by Guidepost
        return None
