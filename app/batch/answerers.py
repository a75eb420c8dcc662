"""Who answers a sample: the in-process pipeline (exactly what /process runs) or a Guidepost server over HTTP."""
from __future__ import annotations

import threading
import time

import requests

from ..errors import ApiError
from ..registry import Registry
from ..service import answer


class SampleFailed(RuntimeError):
    """A sample got an error instead of an answer; recorded with its code and the batch goes on."""

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(message)
        self.code, self.status = code, status

    def as_record(self) -> dict:
        """The error as stored in results.jsonl."""
        return {"code": self.code, "message": str(self), "status": self.status}


class LocalAnswerer:
    """Runs service.answer with this process's registry and settings, so a batch gives what /process gives."""

    concurrency = 1  # one VLM generation at a time per process anyway

    def __init__(self, registry: Registry, settings):
        self.registry, self.settings = registry, settings

    def __call__(self, sample_id: str, images: list[bytes], fields: dict) -> dict:
        """The /process body for one sample, or SampleFailed with the error /process would have sent."""
        try:
            return answer({"images": images, **fields}, self.registry, self.settings, request_id=f"batch-{sample_id}")
        except ApiError as exc:
            raise SampleFailed(exc.code, exc.message, exc.status) from None


class HttpAnswerer:
    """POSTs samples to a running Guidepost's /process as multipart, retrying 503s as Retry-After asks."""

    def __init__(self, url: str, *, concurrency: int, timeout_s: float, retries: int, api_key: str | None = None):
        self.url = url.rstrip("/")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.headers = {"X-API-Key": api_key} if api_key else {}
        self._local = threading.local()  # requests.Session is not thread-safe: one per worker thread

    def wait_ready(self, timeout_s: float) -> None:
        """Block until /readyz is 200; ConnectionError (which stops the batch before it starts) otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                response = self._session().get(f"{self.url}/readyz", timeout=10)
            except requests.RequestException as exc:
                raise ConnectionError(f"cannot reach a Guidepost server at {self.url}: {exc}") from None
            if response.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise ConnectionError(f"{self.url} is not ready after {timeout_s:g} s: {response.text[:200]}")
            time.sleep(2)

    def __call__(self, sample_id: str, images: list[bytes], fields: dict) -> dict:
        """The server's /process body, or SampleFailed with its error code."""
        files = [("image", (f"{sample_id}-{n}", data)) for n, data in enumerate(images)]
        data = [(key, item) for key, value in fields.items()
                for item in (value if isinstance(value, list) else [value])]
        headers = {**self.headers, "X-Request-ID": f"batch-{sample_id}"}
        for attempt in range(self.retries + 1):
            try:
                response = self._session().post(f"{self.url}/process", files=files, data=data, headers=headers,
                                                timeout=self.timeout_s)
            except requests.Timeout:
                raise SampleFailed("timeout", f"no answer within {self.timeout_s:g} s") from None
            except requests.RequestException as exc:
                raise SampleFailed("connection_error", str(exc)) from None
            if response.status_code == 200:
                return response.json()
            if response.status_code == 503 and attempt < self.retries:
                time.sleep(min(float(response.headers.get("Retry-After", 1)), 10))
                continue
            raise _http_failure(response)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session


def _http_failure(response: requests.Response) -> SampleFailed:
    try:
        error = response.json()["error"]
        return SampleFailed(error["code"], error["message"], response.status_code)
    except (ValueError, KeyError, TypeError):
        return SampleFailed(f"http_{response.status_code}", response.text[:200], response.status_code)
