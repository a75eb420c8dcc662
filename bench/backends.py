"""torch vs OpenVINO (fp32, int8, int4) on real architecture sizes with random weights, in one run.

Builds, with RANDOM weights (speed does not depend on weight values; configs written from the public model
configs, nothing downloaded):
- OpenCLIP ViT-B/32, the default preset's detector;
- SmolVLM-256M-Instruct (SigLIP-B/16-512 + SmolLM2-135M), the default preset's VLM, and its SmolLM2-135M
  language model on its own (optimum-intel 2.2 cannot export the Idefics3 wrapper under transformers 5.5,
  but decoding is the language model alone, so its decode speed is the VLM's);
- a 0.58B LLaVA (Qwen2-0.5B + CLIP ViT-B/32 vision tower), which exports whole.

and measures CLIP image latency, VLM time to first token, decode tokens/s, peak RSS, export time and IR size,
each configuration in a fresh subprocess (so peak RSS is its own), plus decode speed against the memory-
bandwidth bound (weight bytes read per token vs the measured memory read bandwidth) and SmolVLM's first-token time
with and without image splitting.

    .venv/bin/python bench/backends.py [--runs 5] [--new-tokens 32]

Writes bench/results/backends-<date>.json and .png.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import children  # noqa: E402
from bench.architectures import (build_clip_vit_b_32, build_llava_qwen2_05b, build_smollm2_135m,  # noqa: E402
                                 build_smolvlm_256m, built)


PROMPT = "Describe what is in front of me in one short sentence. Mention anything dangerous first."
OV_FORMATS = ("fp32", "int8", "int4")


# ---------------------------------------------------------------- models (built once, random weights)

def build_models(cache: Path) -> dict[str, Path]:
    """Random real-size models under cache/bench/, built once."""
    return {"clip-vit-b-32": built(cache, "clip-vit-b-32", build_clip_vit_b_32),
            "smolvlm-256m-random": built(cache, "smolvlm-256m-random", build_smolvlm_256m),
            "smollm2-135m-random": built(cache, "smollm2-135m-random", lambda f: build_smollm2_135m(f, cache)),
            "llava-qwen2-0.5b-random": built(cache, "llava-qwen2-0.5b-random", build_llava_qwen2_05b)}


# ---------------------------------------------------------------- measurements (one subprocess each)

def _photo():
    from guidepost_tools.photos import sample_photo

    return sample_photo("coffee").resize((640, 480))


def _peak_rss_mb() -> float:
    # VmHWM starts afresh at exec; ru_maxrss would carry the forking parent's peak into the child.
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _median_s(fn, runs: int) -> float:
    fn()  # warm-up: lazy initialisation, allocator, OpenVINO's first-inference compilation
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def job_clip(args: dict) -> dict:
    """CLIP image latency through the real detector loaders."""
    import torch

    from guidepost.detector.clip import load_torch_detector
    from guidepost.detector.openvino_clip import load_openvino_detector
    from guidepost.hazards import Vocabulary
    from guidepost.ir_cache import folder_size_mb, openvino_properties
    from guidepost.presets import DetectorSpec, OpenVINOSpec

    spec = DetectorSpec(arch=f"local-dir:{args['model']}")
    vocabulary = Vocabulary.load(ROOT / "models" / "vocabulary.yaml")
    cache = Path(args["cache"])
    started = time.perf_counter()
    if args["backend"] == "torch":
        detector = load_torch_detector(spec, spec.arch, vocabulary, device=torch.device("cpu"), dtype=torch.float32,
                                       cache_dir=cache)
        result = {}
    else:
        ov = OpenVINOSpec(weights=args["weights"], config=args["config"])
        properties = openvino_properties(ov.hint, ov.threads, ov.device, ov.config, cache)
        detector = load_openvino_detector(spec, spec.arch, vocabulary, ov, properties, cache)
        folder = next((cache / "openvino").glob(f"clip-*-{args['weights']}"))
        result = {"ir_mb": round(folder_size_mb(folder), 1)}
    load_s = time.perf_counter() - started
    photo = _photo()
    pixels = detector.preprocess(photo)
    return {**result, "load_s": round(load_s, 2),
            "image_ms": round(_median_s(lambda: detector.encoder.encode_image(pixels), args["runs"]) * 1000, 2),
            "detect_ms": round(_median_s(lambda: detector.detect(photo), args["runs"]) * 1000, 2),
            "peak_rss_mb": round(_peak_rss_mb())}


def job_export(args: dict) -> dict:
    """Export one model to IR through the project's export code; time, size and peak RSS of the export."""
    from guidepost.ir_cache import folder_size_mb
    from guidepost.presets import VLMSpec
    from guidepost.vlm.openvino_vlm import export_vlm

    cache, started = Path(args["cache"]), time.perf_counter()
    if args["kind"] == "vlm":
        folder, _ = export_vlm(VLMSpec(id=Path(args["model"]).name), args["model"], args["weights"], cache)
    else:
        folder = _export_causal_lm(Path(args["model"]), args["weights"], cache)
    return {"export_s": round(time.perf_counter() - started, 1), "ir_mb": round(folder_size_mb(folder), 1),
            "language_model_mb": round(_language_model_bytes(folder) / 2**20, 1),
            "export_peak_rss_mb": round(_peak_rss_mb()), "folder": str(folder)}


def _export_causal_lm(source: Path, weights: str, cache: Path) -> Path:
    from optimum.intel import OVModelForCausalLM

    from guidepost.ir_cache import ensure_exported, export_identity, ir_folder
    from guidepost.vlm.openvino_vlm import weight_compression

    def export(target: Path) -> None:
        compression = weight_compression(weights)
        model = OVModelForCausalLM.from_pretrained(source, export=True, compile=False, load_in_8bit=False,
                                                   **({"quantization_config": compression} if compression else {}))
        model.save_pretrained(target)

    folder = ir_folder(cache, source.name, "main", weights)
    return ensure_exported(folder, export_identity(str(source), "main", weights), export, source.name)[0]


def _language_model_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("openvino_*model.bin")
               if "vision" not in f.name and "text_embeddings" not in f.name)


def job_generate(args: dict) -> dict:
    """Time to first token and decode tokens/s of a VLM (or its language model alone) on one backend."""
    import torch

    new = args["new_tokens"]
    model, inputs, prepare = _load_for_generate(args)
    started = time.perf_counter()
    with torch.inference_mode():
        prepare_s = _median_s(prepare, args["runs"])  # the processor: image resize, tiles, chat template
        first_s = _median_s(lambda: model.generate(**inputs, max_new_tokens=1, do_sample=False), args["runs"])
        result = {"kind": args["kind"], "backend": args["backend"], "prompt_tokens": int(inputs["input_ids"].shape[1]),
                  "ttft_s": round(prepare_s + first_s, 3)}
        if new:
            all_s = _median_s(lambda: model.generate(**inputs, max_new_tokens=new, min_new_tokens=new,
                                                     do_sample=False), args["runs"])
            result["decode_tok_s"] = round((new - 1) / (all_s - first_s), 2)
    return {**result, "peak_rss_mb": round(_peak_rss_mb()), "bench_s": round(time.perf_counter() - started, 1)}


def _load_for_generate(args: dict):
    """The model, its inputs for one photo + prompt, and the preprocessing step (timed into first-token time)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    source, backend = Path(args["model"]), args["backend"]
    ov_config = {"INFERENCE_PRECISION_HINT": "f32"} if backend == "openvino-fp32-f32" else {}
    if args["kind"] == "lm":
        torch.manual_seed(0)
        inputs = {"input_ids": torch.randint(300, 20000, (1, 87)), "attention_mask": torch.ones(1, 87, dtype=torch.long)}
        if backend == "torch":
            model = AutoModelForCausalLM.from_pretrained(source).eval()
        else:
            from optimum.intel import OVModelForCausalLM
            model = OVModelForCausalLM.from_pretrained(args["ir"], ov_config=ov_config)
        return model, inputs, lambda: None
    from guidepost.presets import VLMSpec
    from guidepost.vlm.base import VLM

    processor = AutoProcessor.from_pretrained(args.get("ir") or source, **args.get("processor_kwargs", {}))
    if backend == "torch":
        model = AutoModelForImageTextToText.from_pretrained(source).eval()
    else:
        from optimum.intel import OVModelForVisualCausalLM
        model = OVModelForVisualCausalLM.from_pretrained(args["ir"], ov_config=ov_config)
    # The server's own preprocessing (chat template + processor), float32 on the CPU for both backends.
    vlm, photo = VLM(model, processor, VLMSpec(id=source.name), name=source.name), _photo()

    def prepare():
        inputs.clear()
        inputs.update(vlm.preprocess([photo], PROMPT))
    inputs: dict = {}
    prepare()
    return model, inputs, prepare


JOBS = {"clip": job_clip, "export": job_export, "generate": job_generate}


def run_child(job: str, args: dict) -> dict:
    """Run one job in a fresh interpreter and return its JSON result."""
    label = args.get("backend") or args.get("weights")
    return children.run_child(__file__, job, args, f"{Path(args['model']).name:26s} {label or '':18s}")


# ---------------------------------------------------------------- the run

def read_bandwidth_gbs() -> float:
    """Memory read bandwidth with every core reading its share of a 2 GiB array, as decoding reads weights."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    data = np.ones(2**31 // 8)
    cores = len(os.sched_getaffinity(0))
    parts = np.array_split(data, cores)
    with ThreadPoolExecutor(cores) as pool:  # numpy's sum releases the GIL
        seconds = _median_s(lambda: list(pool.map(np.sum, parts)), 7)
    return data.nbytes / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over every configuration; each figure is the median over rounds, so a burst "
                             "of load on a shared machine hits all backends alike")
    parser.add_argument("--runs", type=int, default=3, help="timed repetitions per measurement in a round (median)")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated for the decode rate")
    parser.add_argument("--cache", type=Path, default=ROOT / "model_cache",
                        help="model cache; random models go to <cache>/bench, IR to <cache>/bench/openvino")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--table", type=Path, metavar="RESULTS_JSON",
                        help="print the README's markdown table of an earlier run's results and exit")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.table:
        print(markdown_table(json.loads(options.table.read_text())))
        return
    if options.child:
        job, args = options.child
        print(json.dumps(JOBS[job](json.loads(args))))
        return

    models = build_models(options.cache)
    cache = options.cache / "bench"
    shutil.rmtree(cache / "openvino", ignore_errors=True)  # export times are measured from scratch
    shutil.rmtree(cache / "embeddings", ignore_errors=True)
    common = {"cache": str(cache), "runs": options.runs}
    report = {"date": dt.date.today().isoformat(), "command": "python bench/backends.py " + " ".join(sys.argv[1:]),
              "machine": _machine(), "versions": _versions(), "rounds": options.rounds, "runs": options.runs,
              "new_tokens": options.new_tokens, "read_bandwidth_gbs": round(read_bandwidth_gbs(), 2)}
    print(f"read bandwidth {report['read_bandwidth_gbs']} GB/s", flush=True)

    print("export to IR (once, each in its own process)", flush=True)
    exports = {(kind, weights): run_child("export", {**common, "kind": kind, "model": str(models[model]),
                                                    "weights": weights})
               for kind, model in (("lm", "smollm2-135m-random"), ("vlm", "llava-qwen2-0.5b-random"))
               for weights in OV_FORMATS}
    # SmolVLM's image splitting costs ~10x per first token: measured once, outside the rounds.
    split = run_child("generate", {**common, "new_tokens": 0, "kind": "vlm", "model": str(models["smolvlm-256m-random"]),
                                   "backend": "torch", "processor_kwargs": {"do_image_splitting": True}})
    plan = _plan(models, exports, {**common, "new_tokens": options.new_tokens})
    measured: dict = {}
    for round_ in range(1, options.rounds + 1):
        print(f"round {round_}/{options.rounds}", flush=True)
        for (section, name), (job, args) in plan.items():
            measured.setdefault((section, name), []).append(run_child(job, args))
    for (section, name), rounds in measured.items():
        extra = exports.get((plan[(section, name)][1].get("kind"), name.split()[0].removeprefix("openvino-")), {})
        report.setdefault(section, {})[name] = {**extra, **_median_of_rounds(rounds)}
    report["smolvlm"]["torch (image splitting)"] = split
    for name, model in (("smollm2_lm", "smollm2-135m-random"), ("llava", "llava-qwen2-0.5b-random")):
        _bandwidth_bound(report[name], report["read_bandwidth_gbs"], models[model])
    report["ratios"] = _ratios(report)

    options.out.mkdir(parents=True, exist_ok=True)
    stem = options.out / f"backends-{report['date']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    chart(report, stem.with_suffix(".png"))
    print(json.dumps(report["ratios"], indent=2))
    print(f"wrote {stem}.json and .png")


def _plan(models: dict[str, Path], exports: dict, generate: dict) -> dict:
    """Every measured configuration: (section, name) → (job, arguments), in the order a round runs them."""
    clip, common = str(models["clip-vit-b-32"]), {key: generate[key] for key in ("cache", "runs")}
    plan = {("clip", "torch"): ("clip", {**common, "model": clip, "backend": "torch"})}
    for name, weights, config in (("openvino-fp32", "fp32", {}),
                                  ("openvino-fp32 (f32 compute)", "fp32", {"INFERENCE_PRECISION_HINT": "f32"}),
                                  ("openvino-int8", "int8", {})):
        plan[("clip", name)] = ("clip", {**common, "model": clip, "backend": "openvino", "weights": weights,
                                         "config": config})
    plan[("smolvlm", "torch (one tile)")] = ("generate", {
        **generate, "kind": "vlm", "model": str(models["smolvlm-256m-random"]), "backend": "torch",
        "processor_kwargs": {"do_image_splitting": False}})
    for section, kind, model in (("smollm2_lm", "lm", "smollm2-135m-random"),
                                 ("llava", "vlm", "llava-qwen2-0.5b-random")):
        args = {**generate, "kind": kind, "model": str(models[model])}
        plan[(section, "torch")] = ("generate", {**args, "backend": "torch"})
        for weights in OV_FORMATS:
            ir = exports[(kind, weights)]["folder"]
            plan[(section, f"openvino-{weights}")] = ("generate", {**args, "backend": "openvino", "ir": ir})
            if weights == "fp32":
                # This CPU has AVX-512 BF16, so OpenVINO computes an fp32 IR in bf16 unless told otherwise.
                plan[(section, "openvino-fp32 (f32 compute)")] = ("generate", {**args, "backend": "openvino-fp32-f32",
                                                                               "ir": ir})
    return plan


def _median_of_rounds(rounds: list[dict]) -> dict:
    """Each numeric figure's median over the rounds, with every round's value kept for the spread."""
    merged = dict(rounds[0])
    for key, value in rounds[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "prompt_tokens":
            values = [r[key] for r in rounds]
            merged[key] = round(statistics.median(values), 3)
            merged.setdefault("rounds", {})[key] = values
    return merged


def _bandwidth_bound(results: dict, bandwidth_gbs: float, model_dir: Path) -> None:
    """Each decode rate against the rate at which the weights read per token could stream from memory."""
    from safetensors import safe_open

    # Every language-model weight is read once per token (the tied embedding as the output layer).
    params = 0
    for file in model_dir.glob("*.safetensors"):
        with safe_open(str(file), "pt") as handle:
            params += sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys()
                          if "vision" not in key and "multi_modal_projector" not in key)
    for name, result in results.items():
        if name == "torch":
            weight_bytes = params * 4
        elif name == "openvino-fp32":
            weight_bytes = params * 2  # held in bf16 after compilation on a CPU with AVX-512 BF16
        else:
            weight_bytes = result["language_model_mb"] * 2**20  # the IR's own weights: f32, u8 or u4 + scales
        bound = bandwidth_gbs * 1e9 / weight_bytes
        result["weights_read_per_token_mb"] = round(weight_bytes / 2**20, 1)
        result["bandwidth_bound_tok_s"] = round(bound, 1)
        result["share_of_bound"] = round(result["decode_tok_s"] / bound, 3)


def _ratios(report: dict) -> dict:
    def ratio(a, b):
        return round(a / b, 2) if a and b else None

    clip, lm, llava, smol = report["clip"], report["smollm2_lm"], report["llava"], report["smolvlm"]
    return {
        "clip_image_openvino_fp32_vs_torch": ratio(clip["torch"]["image_ms"], clip["openvino-fp32"]["image_ms"]),
        "clip_image_openvino_fp32_f32_compute_vs_torch": ratio(clip["torch"]["image_ms"],
                                                               clip["openvino-fp32 (f32 compute)"]["image_ms"]),
        "clip_image_openvino_int8_vs_torch": ratio(clip["torch"]["image_ms"], clip["openvino-int8"]["image_ms"]),
        "smolvlm_decode_openvino_int8_vs_torch_vlm": ratio(lm["openvino-int8"]["decode_tok_s"],
                                                           smol["torch (one tile)"]["decode_tok_s"]),
        **{f"smollm2_decode_openvino_{w}_vs_torch": ratio(lm[f"openvino-{w}"]["decode_tok_s"], lm["torch"]["decode_tok_s"])
           for w in OV_FORMATS},
        **{f"llava_decode_openvino_{w}_vs_torch": ratio(llava[f"openvino-{w}"]["decode_tok_s"],
                                                       llava["torch"]["decode_tok_s"]) for w in OV_FORMATS},
        **{f"llava_ttft_torch_vs_openvino_{w}": ratio(llava["torch"]["ttft_s"], llava[f"openvino-{w}"]["ttft_s"])
           for w in OV_FORMATS},
        "smolvlm_ttft_splitting_vs_one_tile": ratio(smol["torch (image splitting)"]["ttft_s"],
                                                    smol["torch (one tile)"]["ttft_s"]),
    }


def markdown_table(report: dict) -> str:
    """The README's table: every backend's figures with their ratio to torch."""
    names = ["torch", "openvino-fp32", "openvino-fp32 (f32 compute)", "openvino-int8", "openvino-int4"]
    header = ["", "torch fp32", "OpenVINO fp32 IR (bf16 compute)", "OpenVINO fp32 IR, f32 compute",
              "OpenVINO int8", "OpenVINO int4"]

    def row(label: str, section: dict, key: str, unit: str, better: str | None, digits: int = 1) -> str:
        base = section["torch"].get(key)
        cells = []
        for name in names:
            value = section.get(name, {}).get(key)
            if value is None:
                cells.append("–")
                continue
            ratio = (base / value if better == "lower" else value / base) if better and base and name != "torch" else None
            cells.append(f"{value:.{digits}f}{' ' + unit if unit else ''}" + (f" ({ratio:.1f}x)" if ratio else ""))
        return f"| {label} | " + " | ".join(cells) + " |"

    def ir(section: dict) -> str:
        cells = ["–"] + [f"{section[name]['export_s']:.0f} s, {section[name]['ir_mb']:.0f} MB"
                         if name in section and "export_s" in section[name] else "–" for name in names[1:]]
        return " | ".join(cells)

    clip, lm, llava = report["clip"], report["smollm2_lm"], report["llava"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             row("CLIP ViT-B/32: image forward", clip, "image_ms", "ms", "lower"),
             row("CLIP ViT-B/32: peak RSS", clip, "peak_rss_mb", "MB", "lower", 0),
             row("SmolVLM-256M's decoder (SmolLM2-135M): decode", lm, "decode_tok_s", "tok/s", "higher"),
             row("SmolLM2-135M: share of the memory-read bound", lm, "share_of_bound", "", None, 2),
             f"| SmolLM2-135M: export time, IR size | {ir(lm)} |",
             row("LLaVA 0.58B: time to first token (photo + prompt)", llava, "ttft_s", "s", "lower", 2),
             row("LLaVA 0.58B: decode", llava, "decode_tok_s", "tok/s", "higher"),
             row("LLaVA 0.58B: share of the memory-read bound", llava, "share_of_bound", "", None, 2),
             row("LLaVA 0.58B: peak RSS", llava, "peak_rss_mb", "MB", "lower", 0),
             f"| LLaVA 0.58B: export time, IR size | {ir(llava)} |"]
    return "\n".join(lines)


def chart(report: dict, path: Path) -> None:
    """Four panels: CLIP latency, decode rate, first-token time, peak RSS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))

    def bars(ax, groups: dict[str, dict[str, float]], title: str, unit: str):
        names = sorted({name for group in groups.values() for name in group}, key=_order)
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            xs = [g + i * width for g, group in enumerate(groups.values()) if name in group]
            values = [group[name] for group in groups.values() if name in group]
            drawn = ax.bar(xs, values, width, label=name, color=COLORS.get(name, "#999999"))
            ax.bar_label(drawn, labels=[f"{v:.3g}" if v < 1000 else f"{v:.0f}" for v in values], fontsize=7)
        ax.set_xticks([g + width * (len(names) - 1) / 2 for g in range(len(groups))], list(groups))
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.legend(fontsize=7)

    clip = report["clip"]
    bars(axes[0][0], {"CLIP ViT-B/32 image": {k: v["image_ms"] for k, v in clip.items()}},
         "CLIP image latency (lower is better)", "ms")
    lm, llava = report["smollm2_lm"], report["llava"]
    decode = {"SmolLM2-135M (SmolVLM's LM)": {k: v["decode_tok_s"] for k, v in lm.items()},
              "LLaVA 0.58B": {k: v["decode_tok_s"] for k, v in llava.items()}}
    bars(axes[0][1], decode, "Decode rate (higher is better)", "tokens/s")
    ttft = {"LLaVA 0.58B": {k: v["ttft_s"] for k, v in llava.items()},
            "SmolVLM-256M": {k: v["ttft_s"] for k, v in report["smolvlm"].items()}}
    bars(axes[1][0], ttft, "Time to first token, photo + prompt (lower is better)", "s")
    rss = {"CLIP": {k: v["peak_rss_mb"] for k, v in clip.items()},
           "LLaVA 0.58B": {k: v["peak_rss_mb"] for k, v in llava.items()}}
    bars(axes[1][1], rss, "Peak RSS of the serving process (lower is better)", "MB")
    fig.suptitle(f"torch vs OpenVINO, random weights at real sizes — {report['machine']['cpu']}, "
                 f"{report['machine']['cores']} cores, {report['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


COLORS = {"torch": "#7f7f7f", "torch (one tile)": "#7f7f7f", "torch (image splitting)": "#d95f02",
          "openvino-fp32": "#6baed6", "openvino-fp32 (f32 compute)": "#c6dbef", "openvino-int8": "#2171b5",
          "openvino-int4": "#08306b"}


def _order(name: str) -> tuple:
    return (list(COLORS).index(name) if name in COLORS else len(COLORS), name)


def _machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_tile" in flags}


def _versions() -> dict:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("torch", "transformers", "openvino", "optimum-intel", "nncf",
                                                      "open_clip_torch")}


if __name__ == "__main__":
    main()
