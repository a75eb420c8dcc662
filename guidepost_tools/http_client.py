"""What every HTTP client of a Guidepost server shares: retries as Retry-After asks, readiness, the error body."""
from __future__ import annotations

import json
import time
from collections.abc import Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


def retrying_session(retries: int) -> requests.Session:
    """A session that retries 503 (loading, overloaded) up to `retries` times, waiting as Retry-After says."""
    session = requests.Session()
    retry = Retry(total=retries, connect=0, read=0, other=0, status_forcelist=[503], allowed_methods=None,
                  respect_retry_after_header=True, backoff_factor=0.2, raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def wait_ready(url: str, timeout_s: float, *, workers: int = 1, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll /readyz until `workers` distinct workers answered 200; ConnectionError when time runs out or not alive()."""
    deadline, ready, last = time.monotonic() + timeout_s, set(), "no answer"
    while len(ready) < workers:
        if not alive() or time.monotonic() > deadline:
            raise ConnectionError(f"{url} is not ready after {timeout_s:g} s: {last}")
        try:
            # A new connection each time, so the poll reaches every worker; each loads its own models.
            response = requests.get(f"{url.rstrip('/')}/readyz", headers={"Connection": "close"}, timeout=5)
            last = response.text[:300]
            if response.status_code == 200:
                ready.add(response.json().get("worker"))
                continue
        except requests.RequestException as exc:  # not listening yet, or a worker busy importing torch
            last = str(exc)
        time.sleep(0.1)


def error_of(status: int, body: bytes | str) -> tuple[str, str]:
    """(code, message) of an error answer: Guidepost's JSON error shape, or http_<status> for anything else."""
    try:
        error = json.loads(body)["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return f"http_{status}", text[:200]
