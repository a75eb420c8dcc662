"""PNG charts of a load run: latency over time, figures per concurrency level, time per stage, server RSS."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

_KINDS = {"answer": "#2c7fb8", "fallback": "#fdae61", "503 refused": "#d7191c", "other error": "#000000"}
_MARKERS = ("o", "s", "^", "D")
_PERCENTILES = {"p50": "-", "p95": "--", "p99": ":"}


def _kind(record: dict) -> str:
    if record["status"] == 200:
        return "fallback" if record["fallback"] else "answer"
    return "503 refused" if record["status"] == 503 else "other error"


def plot_latency_over_time(targets: list[dict], sla_ms: float, path: Path) -> None:
    """Each request's latency at its start time (like the original server's chart), one panel per target."""
    fig, axes = plt.subplots(len(targets), 1, figsize=(10, 3.6 * len(targets)), squeeze=False)
    for ax, target in zip(axes[:, 0], targets):
        records = target["records"]
        for kind, colour in _KINDS.items():
            chosen = [r for r in records if _kind(r) == kind and r["latency_ms"] is not None]
            if chosen:
                ax.scatter([r["t_s"] for r in chosen], [r["latency_ms"] / 1000 for r in chosen], s=10,
                           color=colour, label=f"{kind} ({len(chosen)})", alpha=0.8)
        ax.axhline(sla_ms / 1000, color="grey", linestyle="--", label=f"SLA {sla_ms / 1000:g} s")
        for level in target["levels"]:
            # Mark where each concurrency level starts, so the steps of a sweep are readable.
            starts = [r["t_s"] for r in records if r["level"] == level["concurrency"]]
            if starts and len(target["levels"]) > 1:
                ax.axvline(min(starts), color="#bbbbbb", linewidth=0.8)
                ax.text(min(starts), 1.0, f" c={level['concurrency']}", transform=ax.get_xaxis_transform(),
                        va="top", fontsize=8, color="#555555")
        within = sum(r["status"] == 200 and r["latency_ms"] <= sla_ms for r in records) / max(1, len(records))
        ax.set_title(f"{target['label']}: {len(records)} requests, {within:.0%} answered within the SLA", fontsize=10)
        ax.set_xlabel("request start (s since the run began)")
        ax.set_ylabel("latency (s, log scale)")
        # Refusals take milliseconds, answers tenths of a second, the SLA seconds: a log axis shows all three.
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both", axis="y")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)


def concurrency_axis(ax, ticks: list[int], title: str, ylabel: str, title_size: float | None = None) -> None:
    """A panel over concurrency levels: clients on a log-2 axis with plain tick labels, y from 0, a light grid."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks)
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=title_size)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def plot_levels(targets: list[dict], path: Path) -> None:
    """Per concurrency level: answer latency p50/p95/p99, answers per second, and the share refused with 503."""
    fig, (lat, tput, refused) = plt.subplots(1, 3, figsize=(15, 4.6))
    for i, target in enumerate(targets):
        levels, colour, marker = target["levels"], f"C{i}", _MARKERS[i % len(_MARKERS)]
        xs = [level["concurrency"] for level in levels]
        for stat, style in _PERCENTILES.items():
            ys = [(level["latency_ms"] or {}).get(stat) for level in levels]
            lat.plot(xs, [y / 1000 if y is not None else None for y in ys], style, marker=marker, color=colour)
        tput.plot(xs, [level["throughput_rps"] for level in levels], "-", marker=marker, color=colour)
        refused.plot(xs, [100 * level["statuses"].get("503", 0) / max(1, level["requests"]) for level in levels],
                     "-", marker=marker, color=colour)
    ticks = sorted({level["concurrency"] for t in targets for level in t["levels"]})
    for ax, title, ylabel in ((lat, "Answer latency (200s)", "seconds"), (tput, "Throughput", "answers per second"),
                              (refused, "Refused at once (503 overloaded)", "% of requests")):
        concurrency_axis(ax, ticks, title, ylabel)
    # One legend for the figure: a colour and marker per target, a line style per percentile.
    handles = [Line2D([], [], color=f"C{i}", marker=_MARKERS[i % len(_MARKERS)], label=target["label"])
               for i, target in enumerate(targets)]
    handles += [Line2D([], [], color="grey", linestyle=style, label=f"latency {stat}")
                for stat, style in _PERCENTILES.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_first_event(targets: list[dict], path: Path) -> None:
    """Per concurrency level: when the first speakable thing arrived (p50/p95) and the share of all requests whose
    hazard verdict arrived within the verdict threshold, against the whole answer's latency."""
    fig, (when, share) = plt.subplots(1, 2, figsize=(12, 4.6))
    threshold = None
    for i, target in enumerate(targets):
        levels, colour, marker = target["levels"], f"C{i}", _MARKERS[i % len(_MARKERS)]
        xs = [level["concurrency"] for level in levels]
        for stat, style in (("p50", "-"), ("p95", "--")):
            ys = [(level.get("first_event_ms") or {}).get(stat) for level in levels]
            when.plot(xs, [y / 1000 if y is not None else None for y in ys], style, marker=marker, color=colour)
        share.plot(xs, [100 * (level.get("verdict") or {}).get("share_within", 0) for level in levels], "-",
                   marker=marker, color=colour)
        threshold = (levels[0].get("verdict") or {}).get("threshold_ms") if levels else threshold
    ticks = sorted({level["concurrency"] for t in targets for level in t["levels"]})
    for ax, title, ylabel in ((when, "First speakable event (hazard event, or the whole answer)", "seconds"),
                              (share, f"Requests with their hazard verdict within {threshold} ms", "% of requests")):
        concurrency_axis(ax, ticks, title, ylabel, title_size=10)
    handles = [Line2D([], [], color=f"C{i}", marker=_MARKERS[i % len(_MARKERS)], label=target["label"])
               for i, target in enumerate(targets)]
    handles += [Line2D([], [], color="grey", linestyle=style, label=stat) for stat, style in (("p50", "-"), ("p95", "--"))]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_stages(targets: list[dict], path: Path) -> None:
    """Median time per part of an answered request, per level: model stages, server overhead, outside the server."""
    parts = {"detect": ("server_ms", "detect"), "generate": ("server_ms", "generate"),
             "server outside models (parse, decode, prompt)": ("overhead_ms", "server_outside_models"),
             "outside the server (network, queue, JSON)": ("overhead_ms", "outside_server")}
    colours = ("#4c72b0", "#dd8452", "#999999", "#8172b2")
    labels, bars = [], {part: [] for part in parts}
    for target in targets:
        for level in target["levels"]:
            labels.append(f"{target['label']}  c={level['concurrency']}" if len(targets) > 1
                          else f"c={level['concurrency']}")
            for part, (group, key) in parts.items():
                stats = level[group].get(key) if level[group] else None
                bars[part].append(max(0.0, stats["p50"]) if stats else 0.0)
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.35 * len(labels)))
    left = [0.0] * len(labels)
    for (part, values), colour in zip(bars.items(), colours):
        ax.barh(labels, values, left=left, color=colour, label=part)
        left = [a + v for a, v in zip(left, values)]
    ax.invert_yaxis()  # first level on top, in run order
    ax.set_xlabel("ms (median of answered requests)")
    ax.set_title("Where an answered request's time goes")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.tick_params(axis="y", labelsize=8)
    _save(fig, path)


def plot_rss(targets: list[dict], path: Path) -> None:
    """Resident memory of each local server over the run: the whole tree, and each gunicorn worker on its own scale."""
    fig, (tree, workers) = plt.subplots(1, 2, figsize=(12, 3.8))
    for i, target in enumerate(targets):
        rss = target.get("rss") or {}
        samples = rss.get("samples") or []
        if not samples:
            continue
        tree.plot([t for t, _ in samples], [b / 2**20 for _, b in samples], color=f"C{i}", label=target["label"])
        pids = sorted({pid for _, by_pid in rss.get("workers") or [] for pid in by_pid})
        for n, pid in enumerate(pids):
            points = [(t, by_pid[pid] / 2**20) for t, by_pid in rss["workers"] if pid in by_pid]
            workers.plot(*zip(*points), color=f"C{i}", linestyle=("-", "--", ":", "-.")[n % 4], linewidth=1,
                         label=f"{target['label'][:30]} worker {n + 1}")
        if rss.get("after_warmup"):
            for ax in (tree, workers):
                ax.axvline(rss["after_warmup"]["warmup_s"], color=f"C{i}", alpha=0.3)
    tree.set_ylim(bottom=0)
    tree.set_title("Server resident memory (master + workers + front)")
    workers.set_title("Each worker (own scale; line: end of warm-up)")
    for ax in (tree, workers):
        ax.set_xlabel("s since the run began")
        ax.set_ylabel("RSS (MiB)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
