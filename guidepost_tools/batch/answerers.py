"""Who answers a sample: the in-process pipeline (exactly what /process runs) or a Guidepost server over HTTP."""
from __future__ import annotations

import threading
import time

import requests

from guidepost import Guidepost
from guidepost.errors import GuidepostError
from guidepost.http.errors import http_status
from guidepost.responses import encode_response
from guidepost.scene import decode_fields

from ..http_client import error_of, retrying_session, wait_ready


class SampleFailed(RuntimeError):
    """A sample got an error instead of an answer; recorded with its code and the batch goes on."""

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(message)
        self.code, self.status = code, status

    def as_record(self) -> dict:
        """The error as stored in results.jsonl."""
        return {"code": self.code, "message": str(self), "status": self.status}


class LocalAnswerer:
    """decode → pipeline → encode in this process, without Flask: a batch gets what /process gives."""

    concurrency = 1  # one VLM generation at a time per process anyway

    def __init__(self, guidepost: Guidepost):
        self.guidepost = guidepost

    def __call__(self, sample_id: str, images: list[bytes], fields: dict) -> dict:
        """The /process body for one sample, or SampleFailed with the error /process would have sent."""
        started = time.perf_counter()
        try:
            scene = decode_fields({"images": images, **fields}, self.guidepost.limits, request_id=f"batch-{sample_id}")
        except GuidepostError as exc:
            raise SampleFailed(exc.code, exc.message, http_status(exc)) from None
        result = self.guidepost.pipeline.run(scene)
        return encode_response(scene, result, self.guidepost.model_info(), started)


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
        wait_ready(self.url, timeout_s)

    def __call__(self, sample_id: str, images: list[bytes], fields: dict) -> dict:
        """The server's /process body, or SampleFailed with its error code."""
        files = [("image", (f"{sample_id}-{n}", data)) for n, data in enumerate(images)]
        data = [(key, item) for key, value in fields.items()
                for item in (value if isinstance(value, list) else [value])]
        headers = {**self.headers, "X-Request-ID": f"batch-{sample_id}"}
        try:
            response = self._session().post(f"{self.url}/process", files=files, data=data, headers=headers,
                                            timeout=self.timeout_s)
        except requests.Timeout:
            raise SampleFailed("timeout", f"no answer within {self.timeout_s:g} s") from None
        except requests.RequestException as exc:
            raise SampleFailed("connection_error", str(exc)) from None
        if response.status_code == 200:
            return response.json()
        code, message = error_of(response.status_code, response.content)
        raise SampleFailed(code, message, response.status_code)

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = retrying_session(self.retries)
        return self._local.session
