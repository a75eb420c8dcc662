"""When the warning leaves vs when the whole answer does, on the default preset's real-size architectures.

Builds SmolVLM-256M's architecture and OpenCLIP ViT-B-32 with RANDOM weights (speed does not depend on weight
values; nothing is downloaded), loads them through the real loading code, and sends scikit-image's photographs as
streamed /process requests through the Flask test client, one at a time: the time to the `hazard` event (decode +
CLIP + the danger decision) and to the `done` event, with the torch CLIP and with the OpenVINO CLIP (int8 and fp32
IR, swapped in for the detector; the VLM as --config says, by default as the shipped preset: OpenVINO int8). It also times detection alone with and without direction
words (three crops batched with the whole image), in interleaved rounds.

    .venv/bin/python bench/first_event.py [--rounds 3] [--max-new-tokens 32]

Writes bench/results/first-event-<date>.json and .png.
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

from bench.architectures import build_smolvlm_256m, built  # noqa: E402
from bench.request_cost import CONFIGS, photos, preset_folder  # noqa: E402
from guidepost import create_app  # noqa: E402
from guidepost.config import PROJECT_ROOT  # noqa: E402


def streamed(client, data: bytes) -> tuple[float, float]:
    """(ms to the hazard event, ms to the done event) of one streamed request."""
    started = time.perf_counter()
    response = client.post("/process", data={"image": (io.BytesIO(data), "p.jpg")}, buffered=False,
                           headers={"Accept": "text/event-stream"})
    chunks = iter(response.response)
    first = next(chunks)
    hazard_ms = (time.perf_counter() - started) * 1000
    assert first.startswith(b"event: hazard"), first[:80]
    for _ in chunks:
        pass
    response.close()
    return hazard_ms, (time.perf_counter() - started) * 1000


def detector_on(ext, backend: str, weights: str = "int8"):
    """The preset's CLIP on `backend` (OpenVINO: exported to IR once, with these weights), over the same vocabulary."""
    from guidepost.backends import create_backend
    from guidepost.sources import prepare_sources

    deployment = ext.deployment.model_copy(update={"backend": backend, "openvino": ext.deployment.openvino.model_copy(
        update={"weights": weights, "threads": ext.deployment.torch_threads})})
    source = prepare_sources(deployment.preset, deployment.model_cache).detector
    return create_backend(deployment).load_detector(deployment.preset.detector, source, ext.vocabulary)


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the photos and detectors (interleaved)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens decoded per answer")
    parser.add_argument("--cache", type=Path, default=PROJECT_ROOT / "model_cache", help="model cache folder")
    parser.add_argument("--config", default="openvino int8, one tile", choices=[c for c in CONFIGS if "one tile" in c],
                        help="the VLM's backend and weights (the shipped default preset: OpenVINO int8)")
    args = parser.parse_args()

    vlm_dir = built(args.cache, "smolvlm-256m-random", build_smolvlm_256m)
    images = photos()
    with tempfile.TemporaryDirectory() as tmp:
        presets = preset_folder(vlm_dir, args.config, args.max_new_tokens, Path(tmp))
        app = create_app({"presets_dir": str(presets), "model_cache": str(args.cache), "load": "eager"})
        ext = app.extensions["guidepost"]
        ext.start()
    pipeline, client = ext.pipeline, app.test_client()
    detectors = {"torch": detector_on(ext, "torch"), "openvino-int8": detector_on(ext, "openvino", "int8"),
                 "openvino-fp32": detector_on(ext, "openvino", "fp32")}
    requests_ms: dict = {name: [] for name in detectors}
    detect_ms: dict = {f"{name} {mode}": [] for name in detectors for mode in ("with directions", "without")}
    photo = next(iter(images.values()))
    from PIL import Image
    scene = Image.open(io.BytesIO(photo)).convert("RGB")
    for round_ in range(args.rounds):
        for name, detector in detectors.items():
            pipeline.detector = detector
            for data in images.values():
                requests_ms[name].append(streamed(client, data))
            for mode, directions in (("with directions", True), ("without", False)):
                detector.spec = detector.spec.model_copy(update={"directions": directions})
                detect_ms[f"{name} {mode}"].append(median_ms(lambda: detector.detect(scene), 5))
            detector.spec = detector.spec.model_copy(update={"directions": True})
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in detect_ms.items()), flush=True)

    results = {name: {"hazard_event_ms_p50": round(statistics.median(h for h, _ in rows), 1),
                      "done_ms_p50": round(statistics.median(d for _, d in rows), 1), "requests": len(rows)}
               for name, rows in requests_ms.items()}
    detection = {name: round(statistics.median(values), 1) for name, values in detect_ms.items()}
    ratios = {"directions_cost_" + name: round(detection[f"{name} with directions"] / detection[f"{name} without"], 2)
              for name in detectors}
    ratios.update({f"done_over_hazard_event_{name}": round(r["done_ms_p50"] / r["hazard_event_ms_p50"], 1)
                   for name, r in results.items()})
    import torch
    report = {"command": "python bench/first_event.py " + " ".join(sys.argv[1:]), "date": dt.date.today().isoformat(),
              "machine": {"cores": len(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "torch_threads": torch.get_num_threads()},
              "max_new_tokens": args.max_new_tokens, "vlm": f"SmolVLM-256M architecture, {args.config}, random weights",
              "streamed_requests": results, "detect_ms_median": detection, "ratios": ratios,
              "rounds": {"requests": {k: [[round(h, 1), round(d, 1)] for h, d in v] for k, v in requests_ms.items()},
                         "detect": {k: [round(x, 1) for x in v] for k, v in detect_ms.items()}}}
    out = PROJECT_ROOT / "bench" / "results" / f"first-event-{report['date']}"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    chart(results, detection, out.with_suffix(".png"))
    print(json.dumps({"streamed_requests": results, "detect_ms_median": detection, "ratios": ratios}, indent=2))
    print(f"wrote {out}.json/.png")


def chart(results: dict, detection: dict, path: Path) -> None:
    """Left: hazard event vs whole answer per CLIP backend; right: detection with and without direction crops."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    names = list(results)
    left.barh(names, [results[n]["done_ms_p50"] / 1000 for n in names], color="#dd8452", label="whole answer (done)")
    left.barh(names, [results[n]["hazard_event_ms_p50"] / 1000 for n in names], color="#c0392b",
              label="hazard event (the warning)")
    for i, name in enumerate(names):
        left.text(results[name]["hazard_event_ms_p50"] / 1000, i, f" {results[name]['hazard_event_ms_p50']:.0f} ms",
                  va="center", fontsize=8)
    left.set_xlabel("seconds after the request left (median)")
    left.set_title("Default preset's architectures, one request at a time")
    left.legend(fontsize=8, loc="lower right")
    keys = list(detection)
    right.barh(keys, list(detection.values()), color=["#4c72b0" if "with" in k else "#9ecae1" for k in keys])
    right.set_xlabel("ms per detection (median)")
    right.set_title("CLIP ViT-B/32: three direction crops batched with the image")
    right.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
