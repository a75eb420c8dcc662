"""A real gunicorn on 127.0.0.1 with the tiny preset, shared by the end-to-end tests of a module."""
from __future__ import annotations

import pytest

from guidepost_tools.loadtest.server import LocalServer


@pytest.fixture(scope="module")
def server(model_cache, tmp_path_factory):
    """gunicorn with 2 workers on the tiny preset, every worker ready; stopped with SIGTERM and reaped."""
    env = {"GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(model_cache), "GUIDEPOST_WORKERS": "2"}
    log = tmp_path_factory.mktemp("gunicorn") / "server.log"
    with LocalServer(env, log, ready_timeout_s=120) as local:
        yield local.url, local.proc, log


API_KEY = "e2e-key"


@pytest.fixture(scope="session")
def keyed_server(model_cache, tmp_path_factory):
    """gunicorn with 2 workers on the tiny preset, an API key, metrics on: shared by the metrics, contract-fuzzing
    and phone-page tests (each checks differences, never absolute counts)."""
    env = {"GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(model_cache), "GUIDEPOST_WORKERS": "2",
           "GUIDEPOST_API_KEYS": API_KEY}
    log = tmp_path_factory.mktemp("gunicorn-keyed") / "server.log"
    with LocalServer(env, log, ready_timeout_s=180) as local:
        yield local
