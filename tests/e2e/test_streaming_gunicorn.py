"""Streamed answers through a real gunicorn and a real HTTP client: event order, and a client that hangs up."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests
import yaml

from guidepost.config import PROJECT_ROOT
from guidepost_tools.loadtest.server import LocalServer
from tests.helpers import presets_dir, sse_events

pytestmark = pytest.mark.e2e


def test_events_arrive_in_order_over_http(server, jpeg):
    base, _, _ = server
    with requests.post(f"{base}/process", files={"image": ("p.jpg", jpeg, "image/jpeg")}, data={"objects": "bus"},
                       headers={"Accept": "text/event-stream"}, stream=True, timeout=60) as response:
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events(response.iter_content(chunk_size=None))
    names = [name for name, _ in events if name != "comment"]
    assert names[0] == "hazard" and names[-1] == "done" and set(names[1:-1]) <= {"sentence"}
    assert events[0][1]["hazards"] == ["bus"] and events[0][1]["warning"].startswith("Caution: bus")
    done = events[-1][1]
    assert done["danger"] is True and done["timings_ms"]["first_event"] <= done["timings_ms"]["total"]


def test_a_client_that_hangs_up_frees_the_model_for_the_next(model_cache, tmp_path, jpeg):
    # A long answer (1024 tokens) and one VLM slot: the next request gets the model only if the first one's
    # generation stopped when its client hung up.
    preset = yaml.safe_load((PROJECT_ROOT / "models" / "tiny.yaml").read_text())
    preset["vlm"].update(max_new_tokens=1024, generate_kwargs={"min_new_tokens": 1024})
    presets = presets_dir(tmp_path / "models", long=yaml.safe_dump(preset))
    env = {"GUIDEPOST_PRESET": "long", "GUIDEPOST_PRESETS_DIR": str(presets), "GUIDEPOST_MODEL_CACHE": str(model_cache),
           "GUIDEPOST_WORKERS": "1", "GUIDEPOST_MAX_IN_FLIGHT": "1", "GUIDEPOST_SSE_KEEPALIVE_S": "0.2"}
    with LocalServer(env, tmp_path / "server.log", ready_timeout_s=120) as local:
        response = requests.post(f"{local.url}/process", files={"image": ("p.jpg", jpeg, "image/jpeg")},
                                 headers={"Accept": "text/event-stream", "X-Request-ID": "hangs-up"}, stream=True,
                                 timeout=60)
        chunks = response.iter_content(chunk_size=None)
        assert sse_events([next(chunks)])[0][0] == "hazard"
        response.close()  # hang up while the model generates
        deadline = time.monotonic() + 60
        while "request hangs-up: client gone" not in local.log_tail(50_000):
            assert time.monotonic() < deadline, local.log_tail()
            time.sleep(0.05)
        line = next(line for line in local.log_tail(50_000).splitlines() if "request hangs-up: client gone" in line)
        assert int(line.rsplit("after ", 1)[1].split()[0]) < 1024, "stopped long before the end"
        body = requests.post(f"{local.url}/process", files={"image": ("p.jpg", jpeg, "image/jpeg")}, timeout=120).json()
        assert body["fallback"] is False, json.dumps(body)[:300]


def test_the_readme_client_speaks_the_warning_first(server, tmp_path, jpeg):
    base, _, _ = server
    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg)
    run = subprocess.run([sys.executable, str(PROJECT_ROOT / "examples" / "speak_stream.py"), base, str(photo)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    spoken = run.stdout.splitlines()
    hazard = requests.post(f"{base}/process", files={"image": ("p.jpg", jpeg)}, data={"mode": "quick"}, timeout=60).json()
    if hazard["danger"]:
        assert spoken[0] == hazard["result"], "the warning is spoken before anything the VLM says"
    assert spoken, "something was said"
