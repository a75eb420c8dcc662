"""PNG charts of an evaluation: per-label F1, the danger confusion matrix, the latency histogram."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def plot_label_f1(per_label: dict, path: Path) -> None:
    """Horizontal bars of F1 per hazard label, annotated with support."""
    labels = sorted(per_label, key=lambda label: per_label[label]["f1"])
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.4 * len(labels)))
    bars = ax.barh(labels, [per_label[label]["f1"] for label in labels], color="#c0392b")
    for bar, label in zip(bars, labels):
        support = per_label[label]["support"]
        note = f"n={support}" if support else "n=0: false alarms only"
        ax.text(min(bar.get_width() + 0.02, 0.75), bar.get_y() + bar.get_height() / 2,
                f"F1 {per_label[label]['f1']:.2f} ({note})", va="center", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title("Hazard detection per label")
    _save(fig, path)


def plot_danger_confusion(confusion: dict, path: Path) -> None:
    """2x2 confusion matrix of the danger decision; the missed-hazard cell is the one to watch."""
    matrix = np.array([[confusion["true_positive"], confusion["false_negative"]],
                       [confusion["false_positive"], confusion["true_negative"]]])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay(matrix, display_labels=["danger", "safe"]).plot(ax=ax, cmap="Reds", colorbar=False)
    ax.set_xlabel("predicted")
    ax.set_ylabel("expected")
    ax.set_title(f"Danger decision (missed hazards: {confusion['false_negative']})")
    _save(fig, path)


def plot_latency(totals: list[float], sla_ms: float, path: Path) -> None:
    """Histogram of total latency with the SLA threshold marked."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(totals, bins=min(30, max(5, len(totals) // 2)), color="#2c7fb8")
    ax.axvline(sla_ms, color="black", linestyle="--", label=f"SLA {sla_ms:g} ms")
    within = np.mean(np.array(totals) <= sla_ms) if totals else 0.0
    ax.set_title(f"Total latency per sample ({within:.0%} within SLA)")
    ax.set_xlabel("ms")
    ax.set_ylabel("samples")
    ax.legend()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
