"""Each measurement in a fresh interpreter, so its peak memory and start-up are its own."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_child(script: str, job: str, args: dict, label: str, timeout: int = 1800) -> dict:
    """Run `script --child job args` and return the JSON its last line printed; RuntimeError with its stderr."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, script, "--child", job, json.dumps(args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{job} {args} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {job:8s} {label} {result}  ({time.perf_counter() - started:.0f} s)", flush=True)
    return result
