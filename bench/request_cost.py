"""What one /process request costs with the default preset's architectures, per stage, on this machine.

Builds SmolVLM-256M-Instruct's architecture (SigLIP-B/16-512 + SmolLM2-135M, sizes from the public config)
and OpenCLIP ViT-B-32 with RANDOM weights (speed does not depend on weight values), loads them through the
real registry and sends real photographs through the Flask test client. Compares configurations of the
default preset (--config, repeatable): its backend and weights (torch float32, OpenVINO int8 or int4), and its
processor setting (one 512 px tile) against SmolVLM's own default (image splitting into up to 4x4 tiles + 1), each
at every --max-new-tokens given (the answer is forced to that length, as the longest real answer would be).

    .venv/bin/python bench/request_cost.py [--requests 5] [--max-new-tokens 48 64] [--config "openvino int8"]

Writes bench/results/request-cost-<date>.json and .png. The tokenizer is a byte-level stand-in (no
download), so text prompts have about 3x more tokens than with SmolVLM's real BPE; the report says how many.
An OpenVINO configuration exports its IR into <cache>/openvino/ on its first run (minutes), outside the timings.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from guidepost.config import PROJECT_ROOT  # noqa: E402
from guidepost_tools.photos import jpeg_bytes, sample_photo  # noqa: E402
from guidepost import create_app  # noqa: E402
from bench.architectures import build_smolvlm_256m, built  # noqa: E402
from bench.presets import decode_exactly, shipped, write_presets  # noqa: E402

# Each configuration: the preset's backend, OpenVINO weights and SmolVLM's image splitting.
CONFIGS = {"torch, one tile": ("torch", None, False),
           "torch, image splitting (SmolVLM default)": ("torch", None, True),
           "openvino int8, one tile": ("openvino", "int8", False),
           "openvino int4, one tile": ("openvino", "int4", False)}


def preset_folder(vlm_dir: Path, config: str, max_new_tokens: int, tmp: Path) -> Path:
    """A presets folder: the default preset with random local weights, configured as CONFIGS[config] says."""
    backend, weights, splitting = CONFIGS[config]
    preset = shipped("default")
    preset.update(device="cpu", backend=backend)
    if weights:
        preset["openvino"]["weights"] = weights
    preset["detector"]["pretrained"] = None  # real ViT-B-32 architecture, random weights
    preset["vlm"].update(id=str(vlm_dir), processor_kwargs={"do_image_splitting": splitting})
    return write_presets(Path(tempfile.mkdtemp(dir=tmp)), default=decode_exactly(preset, max_new_tokens))


def photos() -> dict[str, bytes]:
    """Real photographs shipped with scikit-image, as JPEG."""
    return {name: jpeg_bytes(sample_photo(name)) for name in ("coffee", "astronaut", "chelsea")}


def measure(presets: Path, cache: Path, images: dict[str, bytes], requests: int) -> dict:
    """Load through the real registry, then time `requests` rounds over the photos."""
    start = time.perf_counter()
    # A generous deadline: a forced 64-token answer on a busy 2-core machine must not be cut short.
    app = create_app({"presets_dir": str(presets), "model_cache": str(cache), "load": "eager",
                      "generate_timeout_s": 300})
    ext, client = app.extensions["guidepost"], app.test_client()
    ext.start()
    load_s = time.perf_counter() - start
    vlm = ext.pipeline.vlm
    rows = []
    for i in range(requests):
        for name, data in images.items():
            wall = time.perf_counter()
            body = client.post("/process", data={"image": (io.BytesIO(data), f"{name}.jpg")}).json
            rows.append({**body["timings_ms"], "client_ms": (time.perf_counter() - wall) * 1000,
                         "fallback": body["fallback"], "round": i})
    # Token counts of one prompt, for the record: image tokens dominate prefill.
    from PIL import Image
    sample = Image.open(io.BytesIO(next(iter(images.values())))).convert("RGB")
    sample.thumbnail((ext.preset.image_max_side,) * 2)
    ids = vlm.preprocess([sample], "x " * 200)["input_ids"][0]
    image_tokens = int((ids == vlm.processor.image_token_id).sum())
    timed = [r for r in rows if r["round"] > 0] or rows  # round 0 is warm-up for caches and allocators
    return {"load_s": round(load_s, 2), "image_tokens": image_tokens, "requests": len(timed),
            "fallbacks": sum(r["fallback"] for r in rows),
            "median_ms": {k: round(statistics.median(r[k] for r in timed), 1)
                          for k in ("decode", "detect", "preprocess", "generate", "total", "client_ms")}}


def chart(results: dict, path: Path) -> None:
    """Stacked per-stage median bars, one per configuration."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    names = list(results)
    left = [0.0] * len(names)
    for stage, colour in (("decode", "#999"), ("detect", "#4c72b0"), ("generate", "#dd8452")):
        widths = [results[n]["median_ms"][stage] / 1000 for n in names]
        ax.barh(names, widths, left=left, color=colour, label=stage)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel("seconds per request (median)")
    ax.set_title("Default preset architectures, random weights, CPU")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5, help="rounds over the 3 photos (the first is warm-up)")
    parser.add_argument("--max-new-tokens", type=int, nargs="+", default=[64],
                        help="tokens decoded per answer (several: each configuration at each)")
    parser.add_argument("--config", choices=list(CONFIGS), action="append",
                        help="configurations to measure (repeat); default: all")
    parser.add_argument("--cache", type=Path, default=PROJECT_ROOT / "model_cache", help="model cache folder")
    args = parser.parse_args()

    vlm_dir = built(args.cache, "smolvlm-256m-random", build_smolvlm_256m)
    images = photos()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.config or list(CONFIGS):
            for tokens in args.max_new_tokens:
                label = f"{config}, {tokens} tokens"
                presets = preset_folder(vlm_dir, config, tokens, Path(tmp))
                results[label] = measure(presets, args.cache, images, args.requests)
                print(label, json.dumps(results[label]), flush=True)

    import torch
    report = {"command": "python " + " ".join(sys.argv), "date": dt.date.today().isoformat(),
              # Other jobs share this machine: its load (runnable processes, 1/5/15 min) when the run ended.
              "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
              "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "torch_threads": torch.get_num_threads()},
              "max_new_tokens": args.max_new_tokens, "results": results,
              "ratios_to_first": {label: round(r["median_ms"]["total"] / first["median_ms"]["total"], 3)
                                  for first in [next(iter(results.values()))] for label, r in results.items()},
              "note": "random ids outside the stand-in tokenizer decode to nothing, so every answer is a detector "
                      "fallback; the timings still include the full generation"}
    out = PROJECT_ROOT / "bench" / "results" / f"request-cost-{report['date']}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    chart(results, out.with_suffix(".png"))
    print(json.dumps(report["ratios_to_first"], indent=2))
    print(f"wrote {out}.json/.png")


if __name__ == "__main__":
    main()
