"""A real `flask batch` process killed with SIGKILL mid-run, then resumed: no sample lost, none repeated."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guidepost.config import PROJECT_ROOT
from tests.helpers import FlaskCli

pytestmark = pytest.mark.e2e
EXAMPLE = PROJECT_ROOT / "tests" / "data" / "example"


def test_kill_9_then_resume(model_cache, app, tmp_path):
    images = sorted((EXAMPLE / "images").glob("*.jpg"))
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"image": str(images[n % len(images)]), "hazards": []}) + "\n"
                            for n in range(60)))
    out = tmp_path / "out"
    env = {**os.environ, "GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(model_cache)}
    flask = Path(sys.executable).parent / "flask"
    proc = subprocess.Popen([str(flask), "--app", "wsgi", "batch", "--input", str(data), "--output-dir", str(out),
                             "--no-progress"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            written = list(out.glob("batch_*/results.jsonl"))
            if written and written[0].read_text().count("\n") >= 5:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the batch ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    (folder,) = out.glob("batch_*")
    before = (folder / "results.jsonl").read_text().count("\n")
    assert 5 <= before < 60
    assert json.loads((folder / "summary.json").read_text())["status"] == "running", "killed: never finished"

    result = FlaskCli(app).invoke(args=["batch", "--resume", str(folder), "--no-progress"])
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["sample_id"] for line in (folder / "results.jsonl").read_text().splitlines()]
    assert sorted(ids) == [f"{n:06d}" for n in range(60)], "every sample exactly once"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["counts"]["done"] == 60
    assert summary["runs"][0]["status"] == "running" and summary["runs"][1]["answered"] == 60 - before
