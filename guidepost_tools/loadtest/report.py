"""Per-level statistics of a load run (latency, throughput, SLA, errors, overhead) and ratios between targets."""
from __future__ import annotations

from collections import Counter

from ..evaluation.latency import latency_stats

MODEL_STAGES = ("detect", "preprocess", "generate")
SERVER_STAGES = ("decode", "detect", "preprocess", "generate", "total")
# A verdict (the hazard warning, or that nothing is dangerous) later than this does not help someone walking.
VERDICT_MS = 500
OVERHEADS = {
    "server_outside_models": "the server's total minus detect, preprocess and generate: HTTP body parsing, "
                             "validation, image decode, hazard assessment, prompt building",
    "outside_server": "client latency minus the server's total: network, gunicorn's queue and HTTP parsing, "
                      "response JSON",
    "outside_models": "client latency minus detect, preprocess and generate: the sum of the two above",
}


def summarise_level(records: list[dict], wall_s: float, concurrency: int, sla_ms: float) -> dict:
    """What one level of load got: counts by status and error, latency and stage percentiles, throughput, SLA."""
    answered = [r for r in records if r["status"] == 200 and r["timings_ms"]]
    rows = [_breakdown(r) for r in answered]
    stats = latency_stats(rows, sla_ms) if rows else {}
    refused = [{"client": r["latency_ms"]} for r in records if r["status"] == 503]
    within = sum(r["latency_ms"] <= sla_ms for r in answered)
    first = latency_stats([{"first_event": r["first_event_ms"]} for r in answered], sla_ms) if answered else {}
    verdicts = sum(r["first_event_ms"] <= VERDICT_MS for r in answered)
    return {
        "concurrency": concurrency,
        "requests": len(records),
        "wall_s": round(wall_s, 3),
        "throughput_rps": round(len(answered) / wall_s, 3) if wall_s else None,  # answers (200) per second
        "responses_per_s": round(len(records) / wall_s, 3) if wall_s else None,  # refusals included
        "statuses": dict(sorted(Counter(str(r["status"] or "none") for r in records).items())),
        "errors": dict(sorted(Counter(r["code"] for r in records if r["code"]).items())),
        "fallback": sum(bool(r["fallback"]) for r in answered),
        # What a walking user hears first: the hazard event of a streamed answer, else the whole answer.
        "first_event_ms": _rounded(first.get("first_event")),
        "verdict": {"threshold_ms": VERDICT_MS, "share_within": round(verdicts / len(records), 4) if records else None},
        "sla": {"threshold_ms": sla_ms,
                # every request counts: a refusal or an error is not an answer within the SLA
                "share_within": round(within / len(records), 4) if records else None,
                "share_of_answers_within": round(within / len(answered), 4) if answered else None},
        "latency_ms": _rounded(stats.get("client")),
        "server_ms": {stage: _rounded(stats.get(stage)) for stage in SERVER_STAGES},
        "overhead_ms": {name: _rounded(stats.get(name)) for name in OVERHEADS},
        "refused_latency_ms": _rounded(latency_stats(refused, sla_ms)["client"]) if refused else None,
    }


def _breakdown(record: dict) -> dict:
    """Client latency, the server's stages, and the time outside the models, for one answered request."""
    timings, latency = record["timings_ms"], record["latency_ms"]
    models = sum(timings.get(stage, 0.0) for stage in MODEL_STAGES)
    return {"client": latency, **{stage: timings[stage] for stage in SERVER_STAGES if stage in timings},
            "server_outside_models": timings["total"] - models, "outside_server": latency - timings["total"],
            "outside_models": latency - models}


def _rounded(stats: dict | None) -> dict | None:
    if stats is None:
        return None
    return {key: round(value, 2) if isinstance(value, float) else value for key, value in stats.items()}


def compare(targets: list[dict]) -> dict | None:
    """Each later target's figures over the first's (the baseline), level by level; None for a single target."""
    if len(targets) < 2:
        return None
    baseline = {level["concurrency"]: level for level in targets[0]["levels"]}
    rows = []
    for target in targets[1:]:
        for level in target["levels"]:
            base = baseline.get(level["concurrency"])
            if base is None:
                continue
            rows.append({"target": target["label"], "concurrency": level["concurrency"],
                         "throughput": _ratio(level["throughput_rps"], base["throughput_rps"]),
                         "latency_p50": _ratio(_get(level, "latency_ms", "p50"), _get(base, "latency_ms", "p50")),
                         "latency_p95": _ratio(_get(level, "latency_ms", "p95"), _get(base, "latency_ms", "p95")),
                         "sla_share": _ratio(level["sla"]["share_within"], base["sla"]["share_within"]),
                         "first_event_p50": _ratio(_get(level, "first_event_ms", "p50"),
                                                   _get(base, "first_event_ms", "p50")),
                         "verdict_share": _ratio(_get(level, "verdict", "share_within"),
                                                 _get(base, "verdict", "share_within"))})
    return {"baseline": targets[0]["label"], "note": "each target's figure divided by the baseline's", "ratios": rows}


def _get(level: dict, key: str, stat: str):
    return (level.get(key) or {}).get(stat)


def _ratio(value, base) -> float | None:
    return round(value / base, 3) if value is not None and base else None
