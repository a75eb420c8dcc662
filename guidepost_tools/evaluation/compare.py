"""Two batch runs over the same dataset side by side (base vs fine-tuned): a metric table, per-sample rows, a plot."""
from __future__ import annotations

from pathlib import Path

from guidepost.hazards import Vocabulary

from .report import evaluate_records


def _get(*keys):
    def get(statistics: dict):
        value = statistics
        for key in keys:
            if not isinstance(value, dict) or value.get(key) is None:
                return None
            value = value[key]
        return value
    return get


def _fallback_share(statistics: dict):
    samples = statistics["samples"]
    return samples["fallback"] / samples["answered"] if samples["answered"] else None


# (name, value from statistics.json, higher is better, a share in 0..1 that the plot shows)
METRICS = [
    ("danger recall", _get("danger", "recall"), True, True),
    ("danger precision", _get("danger", "precision"), True, True),
    ("read: exact match", _get("read", "exact_match"), True, True),
    ("read: reference in answer", _get("read", "contains_reference"), True, True),
    ("read: character error rate", _get("read", "cer"), False, True),
    ("container codes correct", _get("read", "containers", "accuracy"), True, True),
    ("check digits valid", _get("read", "containers", "check_digit_valid"), True, True),
    ("BLEU-4", _get("text", "bleu", "bleu4"), True, True),
    ("ROUGE-L F1", _get("text", "rouge", "rougeL", "f1"), True, True),
    ("METEOR", _get("text", "meteor", "score"), True, True),
    ("fallback share", _fallback_share, False, True),
    ("latency p50, total (ms)", _get("latency_ms", "total", "p50"), False, False),
]


def compare_runs(base: list[dict], tuned: list[dict], vocabulary: Vocabulary, sla_ms: float) -> dict:
    """Metric rows (base, tuned, change, which is better) and per-sample rows over the samples both runs have.

    ValueError when the runs are not over the same dataset (a sample id with different input lines).
    """
    base_by_id, tuned_by_id = ({r["sample_id"]: r for r in records} for records in (base, tuned))
    common = sorted(set(base_by_id) & set(tuned_by_id))
    if not common:
        raise ValueError("the two runs have no sample in common")
    differing = [sid for sid in common if base_by_id[sid].get("input") != tuned_by_id[sid].get("input")]
    if differing:
        raise ValueError(f"samples {differing[:5]} have different input lines in the two runs: compare runs of "
                         "the same dataset")
    base_rows, base_stats = evaluate_records([base_by_id[sid] for sid in common], vocabulary, sla_ms)
    tuned_rows, tuned_stats = evaluate_records([tuned_by_id[sid] for sid in common], vocabulary, sla_ms)
    metrics = [_metric_row(name, get(base_stats), get(tuned_stats), higher, share)
               for name, get, higher, share in METRICS if get(base_stats) is not None or get(tuned_stats) is not None]
    return {"samples_compared": len(common),
            "only_in_one_run": sorted(set(base_by_id) ^ set(tuned_by_id)),
            "metrics": metrics,
            "samples": [_sample_row(b, t) for b, t in zip(base_rows, tuned_rows)],
            "statistics": {"base": base_stats, "tuned": tuned_stats}}


def _metric_row(name: str, base, tuned, higher_is_better: bool, share: bool) -> dict:
    better = None
    if base is not None and tuned is not None and base != tuned:
        better = "tuned" if (tuned > base) == higher_is_better else "base"
    return {"metric": name, "base": base, "tuned": tuned,
            "change": tuned - base if base is not None and tuned is not None else None,
            "higher_is_better": higher_is_better, "share": share, "better": better}


def _sample_row(base: dict, tuned: dict) -> dict:
    row = {"sample_id": base["sample_id"], "task": base["task"], "references": base["references"],
           "code_expected": base["code_expected"]}
    for name, source in (("base", base), ("tuned", tuned)):
        read = source.get("read") or {}
        row[name] = {"output": source["output"], "error": (source["error"] or {}).get("code"),
                     "cer": read.get("cer"), "codes_read": read.get("codes_read"),
                     "danger": source["danger_predicted"]}
    return row


def markdown(comparison: dict, base_name: str, tuned_name: str) -> str:
    """The comparison as Markdown: the metric table, then each sample's answers side by side."""
    lines = [f"# {base_name} vs {tuned_name}", "", f"{comparison['samples_compared']} samples in both runs.", "",
             "| metric | base | tuned | change | better |", "|---|---|---|---|---|"]
    for m in comparison["metrics"]:
        lines.append(f"| {m['metric']}{'' if m['higher_is_better'] else ' (lower is better)'} | {_fmt(m['base'])} | "
                     f"{_fmt(m['tuned'])} | {_fmt(m['change'], sign=True)} | {m['better'] or '='} |")
    lines += ["", "| sample | task | reference | base | tuned | CER base | CER tuned |", "|---|---|---|---|---|---|---|"]
    for s in comparison["samples"]:
        reference = s["references"][0] if s["references"] else ""
        cells = [s["sample_id"], s["task"], reference, _answer(s["base"]), _answer(s["tuned"]),
                 _fmt(s["base"]["cer"]), _fmt(s["tuned"]["cer"])]
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def plot(comparison: dict, path: Path, base_name: str, tuned_name: str) -> None:
    """Grouped horizontal bars of every share metric, base and tuned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [m for m in comparison["metrics"] if m["share"]]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.5 * len(rows)))
    for offset, key, label, colour in ((-0.2, "base", base_name, "#999999"), (0.2, "tuned", tuned_name, "#2c7fb8")):
        ax.barh(y + offset, [m[key] or 0 for m in rows], height=0.4, label=label, color=colour)
    ax.set_yticks(y, [m["metric"] + ("" if m["higher_is_better"] else " (lower is better)") for m in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title(f"{comparison['samples_compared']} samples")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _answer(side: dict) -> str:
    return f"error: {side['error']}" if side["error"] else (side["output"] or "")


def _fmt(value, sign: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    return f"{value:+.3f}" if sign else f"{value:.3f}" if isinstance(value, float) else str(value)
