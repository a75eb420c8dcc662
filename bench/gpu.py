"""Big VLMs under load on a GPU: one client and 8 at once, batching off vs on, compiled decoding off vs on.

The LLaVA-1.5-7B and Qwen2.5-VL-3B architectures with RANDOM weights (built once, on the GPU in bfloat16: speed does
not depend on weight values, and nothing is downloaded), loaded through the real loading code with their shipped
presets (CLIP ViT-B-32 with random weights), answering scikit-image's photographs through the Flask test client from
N client threads; every answer decodes exactly --max-new-tokens tokens. Each setting is its own app:

    plain     one request at a time (the presets as shipped)
    batched   vlm.batch: max_size 8, window_ms 20
    compiled  vlm.static_cache: enabled (static KV cache of 1024 tokens, torch.compile reduce-overhead: CUDA graphs)

    .venv/bin/python bench/gpu.py                                       # both architectures, every setting (a GPU)
    .venv/bin/python bench/gpu.py --arch tiny --requests 4 --levels 1,2  # the same code on the tiny preset (a CPU)

Not yet run on a GPU: no session of this project had one when it was written. Each level is added to
bench/results/gpu-<date>.json as it finishes, so a run cut short keeps what it measured; the chart (.png) is drawn
at the end.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.architectures import build_llava_15_7b, build_qwen2_5_vl_3b, built  # noqa: E402
from bench.batching import level, open_app  # noqa: E402
from bench.presets import decode_exactly, shipped, write_presets  # noqa: E402
from bench.request_cost import photos  # noqa: E402
from guidepost import tiny  # noqa: E402
from guidepost.config import PROJECT_ROOT  # noqa: E402

ARCHES = {"llava-1.5-7b": build_llava_15_7b, "qwen2.5-vl-3b": build_qwen2_5_vl_3b, "tiny": None}
SETTINGS = {"plain": {},
            "batched": {"batch": {"max_size": 8, "window_ms": 20}},
            "compiled": {"static_cache": {"enabled": True, "max_len": 1024}}}


def model_folder(arch: str, cache: Path) -> Path:
    """The architecture's random weights, built once: on the GPU in bfloat16 when there is one."""
    import torch

    if ARCHES[arch] is None:
        return tiny.ensure_built("tiny-llava", cache)
    device, dtype = ("cuda", torch.bfloat16) if torch.cuda.is_available() else ("cpu", torch.float32)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):  # a 7B initialised on the CPU in float32 takes minutes and 28 GB
            return built(cache, f"{arch}-random", ARCHES[arch])
    finally:
        torch.set_default_dtype(default_dtype)


def presets(arch: str, vlm_dir: Path, setting: str, max_new_tokens: int, tmp: Path) -> Path:
    """A presets folder holding the architecture's shipped preset over the random weights, as `setting` says."""
    preset = shipped(arch)
    if ARCHES[arch] is not None:
        preset["vlm"]["id"] = str(vlm_dir)
        preset["detector"]["pretrained"] = None  # the preset's CLIP architecture, random weights
    preset["vlm"].update(SETTINGS[setting])
    return write_presets(tmp / f"{arch}-{setting}", **{arch: decode_exactly(preset, max_new_tokens)})


def machine() -> dict:
    """What the run ran on."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cores": len(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(), "gpu": gpu,
            "python": platform.python_version(), "torch": torch.__version__}


def ratios(levels: dict) -> dict:
    """Batching's throughput gain at the most clients and compiled decoding's latency gain at one client."""
    def at(setting: str, clients: int) -> dict | None:
        return next((row for row in levels.get(setting, []) if row["clients"] == clients), None)
    most = max((row["clients"] for rows in levels.values() for row in rows), default=1)
    out = {}
    if at("plain", most) and at("batched", most):
        out[f"throughput_batched_over_plain_at_{most}"] = round(
            at("batched", most)["throughput_rps"] / at("plain", most)["throughput_rps"], 2)
    if at("plain", 1) and at("compiled", 1):
        out["p50_plain_over_compiled_at_1"] = round(at("plain", 1)["p50_ms"] / at("compiled", 1)["p50_ms"], 2)
    return out


def chart(report: dict, path: Path) -> None:
    """Throughput per setting and client count, one panel per architecture."""
    from guidepost_tools.loadtest.plots import concurrency_axis  # first: it selects matplotlib's file-only backend
    import matplotlib.pyplot as plt

    arches = list(report["results"])
    fig, axes = plt.subplots(1, len(arches), figsize=(5.5 * len(arches), 4), squeeze=False)
    for ax, arch in zip(axes[0], arches):
        levels = report["results"][arch]
        for setting, rows in levels.items():
            ax.plot([r["clients"] for r in rows], [r["throughput_rps"] for r in rows], marker="o", label=setting)
        concurrency_axis(ax, [r["clients"] for r in next(iter(levels.values()))],
                         f"{arch} ({report['max_new_tokens']} tokens an answer)", "answers per second")
        ax.legend()
    fig.suptitle(f"bench/gpu.py on {report['machine']['gpu'] or report['machine']['cpu']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", action="append", choices=list(ARCHES),
                        help="architecture (repeat; default: llava-1.5-7b and qwen2.5-vl-3b)")
    parser.add_argument("--setting", action="append", choices=list(SETTINGS), help="(repeat; default: all)")
    parser.add_argument("--levels", default="1,8", help="concurrent clients")
    parser.add_argument("--requests", type=int, default=16, help="answers per level (at least the clients)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens decoded per answer")
    parser.add_argument("--cache", type=Path, default=PROJECT_ROOT / "model_cache", help="model cache folder")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results")
    args = parser.parse_args()
    arches, settings = args.arch or ["llava-1.5-7b", "qwen2.5-vl-3b"], args.setting or list(SETTINGS)
    images = list(photos().values())
    report = {"command": "python bench/gpu.py " + " ".join(sys.argv[1:]), "date": dt.date.today().isoformat(),
              "machine": machine(), "max_new_tokens": args.max_new_tokens, "settings": SETTINGS,
              "what": "random weights at real size, bfloat16 on CUDA (float32 on a CPU), through the Flask test client",
              "results": {}, "load_s": {}, "ratios": {}}
    path = args.out / f"gpu-{report['date']}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in arches:
            vlm_dir = model_folder(arch, args.cache)
            for setting in settings:
                started = time.perf_counter()
                # Compiled decoding compiles while the app loads, before the first request.
                app = open_app(presets(arch, vlm_dir, setting, args.max_new_tokens, Path(tmp)), args.cache, arch)
                report["load_s"][f"{arch} {setting}"] = round(time.perf_counter() - started, 1)
                for clients in [int(x) for x in args.levels.split(",")]:
                    row = level(app, images, clients, max(args.requests, clients))
                    report["results"].setdefault(arch, {}).setdefault(setting, []).append(row)
                    report["ratios"][arch] = ratios(report["results"][arch])
                    path.write_text(json.dumps(report, indent=2))  # a run cut short keeps every finished level
                    print(f"{arch} {setting:8s} {row}", flush=True)
    chart(report, path.with_suffix(".png"))
    print(json.dumps(report["ratios"], indent=2))
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
