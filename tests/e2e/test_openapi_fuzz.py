"""schemathesis fuzzes a real gunicorn against /openapi.json with the README's command: no 5xx, no answer that
breaks the contract, no crash (bounded: a fixed number of examples per operation and a fixed seed)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from guidepost.config import PROJECT_ROOT
from tests.e2e.conftest import API_KEY

pytestmark = pytest.mark.e2e


def readme_command() -> list[str]:
    """The fuzzing command as the README gives it (continuation lines joined)."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    match = re.search(r"^(SCHEMATHESIS_HOOKS=\S+ \.venv/bin/schemathesis run .*?)(?<!\\)$", readme, re.M | re.S)
    assert match, "the README shows the schemathesis command"
    return shlex.split(match.group(1).replace("\\\n", " "))


def test_the_contract_holds_under_fuzzing(keyed_server, tmp_path):
    command = readme_command()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "GUIDEPOST_KEY": API_KEY}
    hooks, args = command[0], command[1:]
    env.update([hooks.split("=", 1)])
    args[0] = str(Path(sys.executable).parent / "schemathesis")
    args = [arg.replace("http://127.0.0.1:5000", keyed_server.url).replace("$GUIDEPOST_KEY", API_KEY) for arg in args]
    assert {"--max-examples", "--seed"} <= set(args), "the run is bounded and repeatable"
    before = requests.get(f"{keyed_server.url}/metrics", headers={"X-API-Key": API_KEY}, timeout=10).text
    # Run in a scratch folder: schemathesis and hypothesis keep their state in the working directory.
    run = subprocess.run(args + ["--no-color"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "No issues found" in run.stdout, report
    assert re.search(r"(\d+) generated, \1 passed", run.stdout), report
    after = requests.get(f"{keyed_server.url}/metrics", headers={"X-API-Key": API_KEY}, timeout=10).text
    assert _process_answers(after) > _process_answers(before), "generated requests reached the models"
    assert keyed_server.proc.poll() is None


def _process_answers(metrics: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("guidepost_answers_total{"))
