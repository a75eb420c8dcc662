"""gunicorn settings: what the master process does before it forks workers."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from guidepost.config import PROJECT_ROOT

_PROBE = """
import json, runpy, sys
conf = runpy.run_path("gunicorn.conf.py")
front = conf.get("_front")
print(json.dumps({"torch_loaded": "torch" in sys.modules, "prometheus_loaded": "prometheus_client" in sys.modules,
                  "bind": conf["bind"], "workers": conf["workers"],
                  "preload": conf["preload_app"], "threads_env": __import__("os").environ.get("GUIDEPOST_TORCH_THREADS"),
                  "front_listen": front.listen if front else None, "front_dir": str(front.folder) if front else None,
                  "max_requests": [conf["max_requests"], conf["max_requests_jitter"]]}))
"""


def _load_conf(cores: set[int] | None = None, **env) -> dict:
    """gunicorn.conf.py's values in a fresh interpreter, optionally pinned to some cores (as taskset would)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUIDEPOST_") and k != "PORT"}
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=PROJECT_ROOT, env={**clean, **env},
                         capture_output=True, text=True, timeout=60, check=True, preexec_fn=pin)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_master_never_imports_torch_and_never_preloads():
    # Forking after torch ran a multi-threaded op hangs the child: torch must only ever load in workers.
    conf = _load_conf()
    assert conf["torch_loaded"] is False and conf["preload"] is False
    # prometheus_client picks single- or multi-process mode when first imported: never before the hooks ran.
    assert conf["prometheus_loaded"] is False


def test_the_front_listens_on_the_public_address_and_gunicorn_on_a_private_socket():
    conf = _load_conf(PORT="8123", GUIDEPOST_WORKERS="2")
    assert conf["front_listen"] == "0.0.0.0:8123" and conf["workers"] == 2
    assert conf["bind"] == f"unix:{conf['front_dir']}/gunicorn.sock"
    assert not os.path.exists(conf["front_dir"]), "loading the configuration alone leaves nothing behind"
    assert _load_conf(GUIDEPOST_BIND="127.0.0.1:9000")["front_listen"] == "127.0.0.1:9000"


def test_without_the_front_gunicorn_binds_the_public_address():
    conf = _load_conf(PORT="8123", GUIDEPOST_FRONT="off")
    assert conf["bind"] == "0.0.0.0:8123" and conf["front_listen"] is None
    assert _load_conf(GUIDEPOST_BIND="127.0.0.1:9000", GUIDEPOST_FRONT="off")["bind"] == "127.0.0.1:9000"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to pin the server to")
def test_workers_share_the_cores_they_are_given():
    # 2 workers x 2 torch threads on 2 cores was 2.5x slower than x 1 (shared/STACK-NOTES.md).
    assert _load_conf({0, 1}, GUIDEPOST_WORKERS="1")["threads_env"] == "2"
    assert _load_conf({0, 1}, GUIDEPOST_WORKERS="2")["threads_env"] == "1"
    assert _load_conf({0}, GUIDEPOST_WORKERS="2")["threads_env"] == "1", "never less than one thread"
    assert _load_conf({0, 1}, GUIDEPOST_TORCH_THREADS="3")["threads_env"] == "3", "an explicit setting wins"


def test_bad_setting_stops_gunicorn_before_any_worker(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUIDEPOST_")}
    out = subprocess.run([sys.executable, "-c", "import runpy; runpy.run_path('gunicorn.conf.py')"],
                         cwd=PROJECT_ROOT, env={**env, "GUIDEPOST_WORKERS": "many"}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and "GUIDEPOST_WORKERS='many'" in out.stderr


_HOOKS = """
import json, os, pathlib, runpy, sys, types
conf = runpy.run_path("gunicorn.conf.py")
server = types.SimpleNamespace()
conf["on_starting"](server)
folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
stale_left = sorted(p.name for p in pathlib.Path(folder).glob("*")) if folder else None
if folder:
    from prometheus_client import Gauge, values
    Gauge("probe_ready", "a worker's gauge", multiprocess_mode="liveall").set(1)  # as a worker would, pid 4242 below
    os.rename(next(pathlib.Path(folder).glob("gauge_liveall_*.db")), pathlib.Path(folder) / "gauge_liveall_4242.db")
    conf["child_exit"](server, types.SimpleNamespace(pid=4242))
live = sorted(p.name for p in pathlib.Path(folder).glob("*")) if folder else None
conf["on_exit"](server)
print(json.dumps({"folder": folder, "stale_left": stale_left, "after_exit": live,
                  "exists": bool(folder) and os.path.isdir(folder)}))
"""


def _run_hooks(**env) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("GUIDEPOST_") and k not in ("PORT", "PROMETHEUS_MULTIPROC_DIR")}
    out = subprocess.run([sys.executable, "-c", _HOOKS], cwd=PROJECT_ROOT, env={**clean, **env},
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_master_prepares_an_empty_metrics_folder_and_cleans_up(tmp_path):
    made = _run_hooks()
    assert made["folder"] and made["stale_left"] == [] and made["after_exit"] == []  # the dead worker's gauge left
    assert made["exists"] is False, "the master's temporary folder is removed at exit"
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"old run")
    (given / "notes.txt").write_text("the operator's")
    kept = _run_hooks(PROMETHEUS_MULTIPROC_DIR=str(given))
    assert kept["folder"] == str(given) and kept["stale_left"] == ["notes.txt"] and kept["exists"] is True


def test_metrics_off_prepares_nothing():
    assert _run_hooks(GUIDEPOST_METRICS="off")["folder"] is None


def test_workers_restart_after_max_requests_only_when_asked():
    assert _load_conf()["max_requests"] == [0, 0], "off by default: one worker alone cannot afford a reload"
    assert _load_conf(GUIDEPOST_MAX_REQUESTS="5000")["max_requests"] == [5000, 500]

