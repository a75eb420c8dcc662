"""results.jsonl records → evaluation_data.json, statistics.json and plots."""
from __future__ import annotations

import json
from pathlib import Path

from guidepost.files import atomic_write
from guidepost.hazards import Vocabulary

from ..finetune.annotations import expected_code
from . import plots
from .hazard_metrics import danger_scores, label_scores
from .latency import latency_stats
from .read_metrics import read_scores, score_row
from .text_metrics import corpus_scores, sample_scores


def evaluate_records(records: list[dict], vocabulary: Vocabulary, sla_ms: float) -> tuple[list[dict], dict]:
    """Per-sample rows and the statistics, danger decision first."""
    rows = [_row(record, vocabulary) for record in records]
    answered = [row for row in rows if row["error"] is None]
    labelled = [row for row in answered if row["hazards_expected"] is not None]
    with_reference = [row for row in answered if row["references"]]
    for row in with_reference:
        row["scores"] = sample_scores(row["output"], row["references"], row["lang"])
    for row in answered:
        if row["task"] == "read":
            row["read"] = score_row(row["output"], row["references"], row["code_expected"], row["codes"])

    failed = [row for row in rows if row["error"] is not None]
    statistics = {
        "danger": danger_scores([row["sample_id"] for row in labelled],
                                [bool(row["hazards_expected"]) for row in labelled],
                                [row["danger_predicted"] for row in labelled]) if labelled else None,
        "hazard_labels": label_scores([row["hazards_expected"] for row in labelled],
                                      [row["hazards_predicted"] for row in labelled]) if labelled else None,
        "samples": {"total": len(rows), "answered": len(answered), "failed": len(failed),
                    # A failed sample spoke no warning at all: count the labelled hazards it carried.
                    "failed_with_expected_hazards": sum(bool(row["hazards_expected"]) for row in failed),
                    "fallback": sum(row["fallback"] for row in answered),
                    "with_hazard_labels": len(labelled), "with_references": len(with_reference)},
        "text": corpus_scores([(row["output"], row["references"], row["lang"]) for row in with_reference])
        if with_reference else None,
        "latency_ms": latency_stats([row["timings_ms"] for row in answered], sla_ms) if answered else None,
        "read": read_scores(answered),
    }
    unknown = sorted({label for row in labelled for label in row["hazards_expected"]
                      if not getattr(vocabulary.get(label), "hazard", False)})
    if unknown:
        statistics["warnings"] = [f"expected hazard labels the vocabulary never flags as hazards: {unknown}"]
    return rows, statistics


def write_plots(rows: list[dict], statistics: dict, sla_ms: float, folder: Path) -> list[Path]:
    """The PNGs this evaluation has data for."""
    written = []
    if statistics["hazard_labels"] and statistics["hazard_labels"]["per_label"]:
        written.append(folder / "hazard_label_f1.png")
        plots.plot_label_f1(statistics["hazard_labels"]["per_label"], written[-1])
    if statistics["danger"]:
        written.append(folder / "danger_confusion.png")
        plots.plot_danger_confusion(statistics["danger"]["confusion"], written[-1])
    totals = [row["timings_ms"]["total"] for row in rows if row["error"] is None and "total" in row["timings_ms"]]
    if totals:
        written.append(folder / "latency_histogram.png")
        plots.plot_latency(totals, sla_ms, written[-1])
    return written


def write_json(path: Path, value) -> None:
    """Pretty, UTF-8 JSON (Korean stays readable)."""
    atomic_write(path, json.dumps(value, indent=2, ensure_ascii=False))


def _row(record: dict, vocabulary: Vocabulary) -> dict:
    output = record["output"] or {}
    expected = record.get("hazards")
    if expected is not None:
        expected = sorted({detection.label for detection in vocabulary.normalise(expected)})
    timings = dict(output.get("timings_ms", {}))
    if record.get("elapsed_ms") is not None and output:
        timings["client"] = record["elapsed_ms"]  # as the batch saw it: HTTP and queueing included
    line = record.get("input") or {}
    try:
        code = expected_code(line)
    except ValueError:
        code = None  # a malformed container label (split refuses them) scores as no label
    return {
        "sample_id": record["sample_id"],
        "task": line.get("task") or "describe",
        "question": record.get("question"),
        "references": record.get("references") or [],
        "output": output.get("result"),
        "lang": record.get("lang") or "en",
        "hazards_expected": expected,
        "hazards_predicted": sorted(output.get("hazards", [])),
        "danger_expected": bool(expected) if expected is not None else None,
        "danger_predicted": output.get("danger"),
        "fallback": bool(output.get("fallback")),
        "error": record["error"],
        "timings_ms": timings,
        "code_expected": code,
        "codes": output.get("codes", []),
    }
