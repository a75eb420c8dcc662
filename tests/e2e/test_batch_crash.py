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
    blocking = tmp_path / "blocking.jpg"
    os.mkfifo(blocking)  # reading sample 10's image blocks the batch until the test writes to it: it never will
    paths = [str(images[n % len(images)]) if n != 10 else str(blocking) for n in range(60)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"image": path, "hazards": []}) + "\n" for path in paths))
    out = tmp_path / "out"
    env = {**os.environ, "GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(model_cache)}
    flask = Path(sys.executable).parent / "flask"
    proc = subprocess.Popen([str(flask), "--app", "guidepost", "batch", "--input", str(data), "--output-dir", str(out),
                             "--no-progress"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Images are read one sample ahead of the answer being written, so the batch stops with 0..8 written.
        deadline = time.monotonic() + 120
        while not _lines(out) >= 9:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    (folder,) = out.glob("batch_*")
    assert _lines(out) == 9
    assert json.loads((folder / "summary.json").read_text())["status"] == "running", "killed: never finished"

    blocking.unlink()
    blocking.write_bytes(images[0].read_bytes())
    result = FlaskCli(app).invoke(args=["batch", "--resume", str(folder), "--no-progress"])
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["sample_id"] for line in (folder / "results.jsonl").read_text().splitlines()]
    assert sorted(ids) == [f"{n:06d}" for n in range(60)], "every sample exactly once"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["counts"]["done"] == 60
    assert summary["runs"][0]["status"] == "running" and summary["runs"][1]["answered"] == 60 - 9


def _lines(out: Path) -> int:
    written = list(out.glob("batch_*/results.jsonl"))
    return written[0].read_bytes().count(b"\n") if written else 0
