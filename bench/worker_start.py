"""Worker start: time to /healthz and to /readyz, worker RSS and which heavy modules a worker imported.

Starts gunicorn (one worker) from each given checkout in turn, interleaved over rounds, and reports the medians
and their ratios to the first checkout — e.g. before vs after a change, in one run:

    git worktree add /tmp/guidepost-before <commit>
    .venv/bin/python bench/worker_start.py --root /tmp/guidepost-before --root . --rounds 5

`--preset tiny` (the default) starts the tiny preset. `--preset default` starts the default preset as shipped
(OpenVINO, int8) over its real-size architectures with random weights (bench/architectures.py: SmolVLM-256M and
OpenCLIP ViT-B/32): a restart, the IR already exported and the label embeddings already cached by a first start
outside the measurement, as a deployment restarts.

    .venv/bin/python bench/worker_start.py --root . --preset default --rounds 5

Right at ready, one photo goes to /process: `first_answer` is the seconds from spawn to its whole answer (a worker
that turns ready before its VLM has warmed up shows here what that costs the first user).

Each checkout runs with this venv's interpreter (its packages must import there). Writes
bench/results/worker-start-<date>[-default].json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guidepost_tools.loadtest.payloads import default_photos  # noqa: E402
from guidepost_tools.loadtest.server import free_port, is_gunicorn  # noqa: E402

PHOTO = default_photos()[0]

WHAT = {"tiny": "tiny preset",
        "default": "the default preset (OpenVINO, int8) over random SmolVLM-256M and ViT-B/32 weights at real size, "
                   "a restart: IR exported and label embeddings cached by an earlier start"}
# Libraries only the tools need: a worker that maps one of their shared objects or files imported it.
KEYS = ("healthz", "readyz", "first_answer", "worker_rss_mib")
HEAVY = ("matplotlib", "nltk", "rouge_score", "kiwipiepy", "sklearn", "skimage", "guidepost_tools")


def start_once(root: Path, cache: Path, preset: dict) -> dict:
    """One gunicorn start from root: seconds to the first /healthz and /readyz 200, then the worker's memory."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GUIDEPOST_")}, **preset,
           "GUIDEPOST_MODEL_CACHE": str(cache), "GUIDEPOST_BIND": f"127.0.0.1:{port}",
           "GUIDEPOST_WORKERS": "1", "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1"}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    started = time.perf_counter()
    proc = subprocess.Popen([str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {}
    try:
        for path in ("healthz", "readyz"):
            while path not in result:
                if proc.poll() is not None or time.perf_counter() - started > 900:  # a first start may export
                    raise RuntimeError(f"gunicorn in {root} did not answer /{path}")
                try:
                    if requests.get(f"http://127.0.0.1:{port}/{path}", timeout=2).status_code == 200:
                        result[path] = round(time.perf_counter() - started, 3)
                        continue
                except requests.RequestException:
                    pass
                time.sleep(0.02)
        photo = PHOTO
        answer = requests.post(f"http://127.0.0.1:{port}/process", timeout=120,
                               files={"image": (photo.name, photo.data, photo.content_type)})
        result["first_answer"] = round(time.perf_counter() - started, 3)
        result["first_answer_reason"] = answer.json().get("reason")  # None: the VLM answered; "unspeakable": it did, in
        # noise (random weights)
        # The master's first child may be the front's nginx (started before the workers).
        worker = next(c for c in psutil.Process(proc.pid).children() if is_gunicorn(c.cmdline()))
        result["worker_rss_mib"] = round(worker.memory_info().rss / 2**20, 1)
        mapped = " ".join(m.path for m in worker.memory_maps())
        result["heavy_modules"] = sorted(name for name in HEAVY if f"/{name}/" in mapped)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return result


def default_preset(cache: Path, folder: Path) -> dict:
    """The default preset as shipped, over random real-size weights: a presets folder and the variables naming it."""
    from bench.architectures import build_clip_vit_b_32, build_smolvlm_256m, built
    from bench.presets import shipped, write_presets

    preset = shipped("default")
    preset["vlm"]["id"] = str(built(cache, "smolvlm-256m-random", build_smolvlm_256m))
    preset["detector"].update(arch=f"local-dir:{built(cache, 'clip-vit-b-32', build_clip_vit_b_32)}",
                              pretrained=None)
    return {"GUIDEPOST_PRESET": "default", "GUIDEPOST_PRESETS_DIR": str(write_presets(folder, default=preset))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", action="append", type=Path, required=True, help="a checkout (repeat; first = baseline)")
    parser.add_argument("--rounds", type=int, default=5, help="starts per checkout, interleaved")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--preset", choices=("tiny", "default"), default="tiny",
                        help="tiny, or the default preset over random real-size weights (see above)")
    parser.add_argument("--cache", type=Path, default=ROOT / "model_cache",
                        help="--preset default: where the random models are built once (<cache>/bench) and "
                             "the server's cache with their IR is kept (<cache>/bench/worker-start)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="guidepost-start-") as tmp:
        # The default preset's IR (minutes to export) is kept between runs of this benchmark.
        cache = Path(tmp) / "cache" if args.preset == "tiny" else args.cache / "bench" / "worker-start"
        preset = ({"GUIDEPOST_PRESET": "tiny"} if args.preset == "tiny"
                  else default_preset(args.cache, Path(tmp) / "models"))
        for root in args.root:  # build the tiny models, export the IR, cache embeddings: once, outside the measurement
            first = start_once(root.resolve(), cache, preset)
            print(f"first start (not measured) {root}: {first}", flush=True)
        runs = {str(root): [] for root in args.root}
        for round_ in range(args.rounds):
            for root in args.root:
                runs[str(root)].append(start_once(root.resolve(), cache, preset))
                print(f"round {round_ + 1} {root}: {runs[str(root)][-1]}", flush=True)
    medians = {root: {key: statistics.median(r[key] for r in rounds) for key in KEYS}
               | {"heavy_modules": rounds[-1]["heavy_modules"]} for root, rounds in runs.items()}
    base = medians[str(args.root[0])]
    ratios = {root: {key: round(m[key] / base[key], 3) for key in KEYS}
              for root, m in medians.items()}
    report = {"date": dt.date.today().isoformat(), "command": "python bench/worker_start.py " + " ".join(sys.argv[1:]),
              # Other jobs share this machine: its load (runnable processes, 1/5/15 min) when the run ended.
              "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
              "machine": {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                          "cpu": platform.processor() or platform.machine()},
              "what": f"gunicorn, 1 worker, {WHAT[args.preset]}, GUIDEPOST_LOAD=background; seconds from spawn to "
                      "the first 200",
              "medians": medians, "ratios_to_first": ratios, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"worker-start-{report['date']}{'' if args.preset == 'tiny' else '-' + args.preset}.json"
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps({"medians": medians, "ratios_to_first": ratios}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
