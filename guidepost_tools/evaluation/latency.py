"""Latency statistics per stage and the share of answers within an SLA."""
from __future__ import annotations

import numpy as np


def latency_stats(timings: list[dict[str, float]], sla_ms: float) -> dict:
    """mean/std/min/max/p50/p95/p99 of every stage seen, and the share of totals at or under sla_ms."""
    stages = sorted({stage for timing in timings for stage in timing}, key=_stage_order)
    stats = {}
    for stage in stages:
        values = np.array([timing[stage] for timing in timings if stage in timing], dtype=float)
        stats[stage] = {"count": int(values.size), "mean": float(values.mean()), "std": float(values.std()),
                        "min": float(values.min()), "max": float(values.max()),
                        "p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
                        "p99": float(np.percentile(values, 99))}
    totals = np.array([timing["total"] for timing in timings if "total" in timing], dtype=float)
    stats["sla"] = {"threshold_ms": sla_ms, "stage": "total",
                    "share_within": float((totals <= sla_ms).mean()) if totals.size else None}
    return stats


def _stage_order(stage: str) -> tuple[int, str]:
    order = ["decode", "detect", "generate", "total", "client"]
    return (order.index(stage) if stage in order else len(order), stage)
