"""LoRA fine-tuning cost on this machine, and what serving a merged adapter costs against the base model.

Trains one epoch over the synthetic read set (tests/data/read, 24 lines; validation on 4 of them) through
`flask finetune train`'s own code (guidepost_tools.finetune.run), each configuration in a fresh process so its
peak memory is its own:
- the tiny preset (random tiny LLaVA, as the tests use);
- the default preset's architecture at its real size with RANDOM weights (SmolVLM-256M-Instruct: SigLIP-B/16-512
  + SmolLM2-135M, one 512 px tile; OpenCLIP ViT-B-32), without and with gradient checkpointing. Speed and memory do
  not depend on weight values; nothing is downloaded. The stand-in byte-level tokenizer makes the prompt about 3x
  longer in tokens than SmolVLM's real one, so these times are on the high side.

Then loads the default preset's architecture three times through the real loading code: the base model, the model
with the trained adapter merged (what the server does), and the base wrapped by peft without merging, and times one
read answer each (a fixed number of new tokens), interleaved over rounds.

    .venv/bin/python bench/finetune.py [--rounds 5] [--new-tokens 24]

Writes bench/results/finetune-<date>.json. GPU timings need a CUDA machine (`--device cuda`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import children  # noqa: E402
from bench.architectures import build_smolvlm_256m, built  # noqa: E402
from bench.backends import _machine  # noqa: E402
from bench.presets import decode_exactly, shipped, write_presets  # noqa: E402

DATA = ROOT / "tests" / "data" / "read" / "data.jsonl"
ADAPTER = "bench-smolvlm-256m"


def presets(folder: Path, vlm_dir: Path, device: str, max_new_tokens: int) -> Path:
    """A presets folder: `default` with the random real-size SmolVLM and a random ViT-B-32; `tiny` as shipped."""
    preset = shipped("default")
    preset["device"] = device
    preset["detector"]["pretrained"] = None  # the real ViT-B-32 architecture, random weights
    preset["vlm"]["id"] = str(vlm_dir)
    return write_presets(folder, default=decode_exactly(preset, max_new_tokens), tiny=shipped("tiny"))


def _app(args: dict, **overrides):
    from guidepost import create_app

    return create_app({"presets_dir": args["presets"], "model_cache": args["cache"], "load": "lazy", **overrides})


def job_train(args: dict) -> dict:
    """One epoch over the synthetic set; samples/s of the epoch and the process's peak memory."""
    from guidepost_tools.finetune.run import TrainingRequest, run_training

    work = Path(args["work"])
    lines = [json.loads(line) for line in DATA.read_text().splitlines()]
    for line in lines:
        line["image"] = str(DATA.parent / line["image"])
    (work / "train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (work / "val.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines[:4]))
    ext = _app(args, preset=args["preset"]).extensions["guidepost"]
    request = TrainingRequest(preset=args["preset"], train=work / "train.jsonl", val=work / "val.jsonl",
                              output=args["output"], epochs=1, batch_size=args["batch_size"], lr=1e-4,
                              gradient_checkpointing=args["gradient_checkpointing"], device=args["device"],
                              force=True, progress=False)
    started = time.perf_counter()
    folder, history = run_training(ext, request, echo=lambda line: print(line, file=sys.stderr, flush=True))
    epoch = history.epochs[0]
    manifest = json.loads((folder / "guidepost-adapter.json").read_text())
    return {"samples": len(lines), "epoch_s": epoch["seconds"], "samples_per_s": epoch["samples_per_s"],
            "peak_memory_mb": epoch["peak_memory_mb"],
            "trainable_parameters": manifest["parameters"]["trainable"],
            "total_parameters": manifest["parameters"]["total"], "wall_s": round(time.perf_counter() - started, 1)}


def _answer(vlm, image, prompt: str, new_tokens: int) -> str:
    return vlm.generate(vlm.preprocess([image], prompt), deadline=time.monotonic() + 600, max_new_tokens=new_tokens)


def job_serve(args: dict) -> dict:
    """Median time of one read answer from the base model, the merged adapter and the unmerged peft model."""
    from peft import PeftModel
    from PIL import Image

    base = _app(args, preset="default", adapter="none").extensions["guidepost"]
    merged = _app(args, preset="default", adapter=args["adapter"]).extensions["guidepost"]
    unmerged = _app(args, preset="default", adapter="none").extensions["guidepost"]
    for ext in (base, merged, unmerged):
        ext.ensure_loaded()
    unmerged.pipeline.vlm.model = PeftModel.from_pretrained(unmerged.pipeline.vlm.model, args["adapter_path"]).eval()
    image = Image.open(DATA.parent / "images" / "000.jpg").convert("RGB")
    prompt = merged.prompts.render("read", "en", "safe", main_hazard="", hazards=[], objects=[], question="")
    variants = {"base": base, "merged adapter": merged, "unmerged peft": unmerged}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for ext in variants.values():
        _answer(ext.pipeline.vlm, image, prompt, args["new_tokens"])  # warm-up
    for _ in range(args["rounds"]):
        for name, ext in variants.items():  # interleaved: a burst of load on a shared machine hits all alike
            started = time.perf_counter()
            _answer(ext.pipeline.vlm, image, prompt, args["new_tokens"])
            times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"new_tokens": args["new_tokens"], "rounds": args["rounds"],
            "answer_s": {name: round(value, 3) for name, value in medians.items()},
            "all_s": {name: [round(v, 3) for v in values] for name, values in times.items()},
            "ratio_to_base": {name: round(value / medians["base"], 3) for name, value in medians.items()}}


JOBS = {"train": job_train, "serve": job_serve}


# name → (preset, gradient checkpointing)
TRAINING = {"tiny": ("tiny", False), "smolvlm-256m": ("default", False),
            "smolvlm-256m-checkpointing": ("default", True)}


def run_child(job: str, args: dict, timeout_s: int) -> dict:
    """Run one job in a fresh interpreter (its own peak memory); its JSON result, or why it has none."""
    try:
        return children.run_child(__file__, job, args, args.get("label", ""), timeout=timeout_s)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:  # one configuration failing keeps the others' results
        print(f"  {job} {args.get('label', '')} failed: {str(exc)[-300:]}", flush=True)
        return {"failed": str(exc)[-300:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="timed answers per serving variant (median)")
    parser.add_argument("--new-tokens", type=int, default=24, help="tokens generated per timed answer")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    parser.add_argument("--training", default=",".join(TRAINING),
                        help=f"training configurations to run, comma-separated, or none (all: {','.join(TRAINING)})")
    parser.add_argument("--timeout-s", type=int, default=3600, help="most seconds one configuration may take")
    parser.add_argument("--cache", type=Path, default=ROOT / "model_cache")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        job, args = options.child
        print(json.dumps(JOBS[job](json.loads(args))))
        return

    load_start = [round(x, 2) for x in os.getloadavg()]
    cache = options.cache / "bench"
    vlm_dir = built(cache, "smolvlm-256m-random", build_smolvlm_256m)
    with tempfile.TemporaryDirectory() as tmp:
        common = {"presets": str(presets(Path(tmp) / "models", vlm_dir, options.device, options.new_tokens)),
                  "cache": str(cache), "work": tmp, "device": options.device, "batch_size": options.batch_size}
        training = {}
        for name in [n for n in options.training.split(",") if n and n != "none"]:
            preset, checkpointing = TRAINING[name]
            training[name] = run_child("train", {**common, "label": name, "preset": preset,
                                                 "gradient_checkpointing": checkpointing,
                                                 "output": ADAPTER if preset == "default" else "bench-tiny"},
                                       options.timeout_s)
        # The adapter the default-preset training wrote (this run's, or an earlier run's with --training none).
        serving = run_child("serve", {**common, "label": "default preset", "adapter": ADAPTER,
                                      "adapter_path": str(cache / "adapters" / ADAPTER), "rounds": options.rounds,
                                      "new_tokens": options.new_tokens}, options.timeout_s)
    report = {"date": dt.date.today().isoformat(), "command": "python bench/finetune.py " + " ".join(sys.argv[1:]),
              "machine": _machine(), "device": options.device, "versions": _versions(),
              # A shared machine: the load average around the run says how much the absolute figures may suffer.
              "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
              "dataset": f"{DATA.relative_to(ROOT)} (24 lines, one epoch; validation on 4)",
              "batch_size": options.batch_size, "training": training, "serving": serving}
    if options.training == "none":
        report["training_note"] = "not run here (--training none): the adapter served is an earlier run's"
    # How the served adapter was trained (its own log and manifest, written by that training run).
    adapter = cache / "adapters" / ADAPTER
    if (adapter / "training_log.json").is_file():
        manifest = json.loads((adapter / "guidepost-adapter.json").read_text())
        report["served_adapter"] = {"created_at": manifest["created_at"],
                                    "hyperparameters": manifest["hyperparameters"],
                                    "training_log": json.loads((adapter / "training_log.json").read_text())}
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / f"finetune-{report['date']}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")


def _versions() -> dict:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("torch", "transformers", "peft", "open_clip_torch")}


if __name__ == "__main__":
    main()
