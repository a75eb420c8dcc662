"""The adapter folder: peft's adapter, the processor, the manifest, the training log and the loss curve."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from guidepost.adapters import MANIFEST
from guidepost.files import build_once
from guidepost.versions import version

LOG, CURVE = "training_log.json", "loss_curve.png"


def write_adapter(target: Path, peft_model, best_state: dict, processor, manifest: dict, log: dict) -> None:
    """Write the folder whole (staged, then renamed into place), replacing an older one."""
    from peft import set_peft_model_state_dict

    def build(staging: Path) -> None:
        set_peft_model_state_dict(peft_model, best_state)  # the best epoch's weights, not the last epoch's
        peft_model.save_pretrained(staging)
        processor.save_pretrained(staging)  # what training tokenized with: the folder describes itself
        (staging / LOG).write_text(json.dumps(log, indent=2), encoding="utf-8")
        plot_losses(log, staging / CURVE)
        # Last: a folder with a manifest is a finished adapter.
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")

    build_once(target, build, lambda folder: False)


def manifest(name: str, *, spec, preset: str, model_type: str, datasets: dict, split: dict | None,
             prompts: dict, hyperparameters: dict, history, parameters: dict, device: str, dtype: str) -> dict:
    """What the adapter is and how it was made: base model, data, prompts, hyper-parameters, result, versions."""
    return {
        "format": 1,
        "name": name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "base": {"id": spec.id, "revision": spec.revision, "source": spec.source, "model_type": model_type},
        "preset": preset,
        "datasets": datasets,
        "split": split,
        "prompts": prompts,
        "hyperparameters": {**hyperparameters, "device": device, "dtype": dtype},
        "parameters": parameters,
        "base_val_loss": history.base_val_loss,
        "best_epoch": history.best_epoch,
        "epochs_run": len(history.epochs),
        "stopped_early": history.stopped_early,
        "losses": history.losses(),
        "versions": {name: version(name) for name in ("torch", "transformers", "peft", "guidepost")},
    }


def plot_losses(log: dict, path: Path) -> None:
    """Training and validation loss per epoch, the base model's validation loss and the best epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e["epoch"] for e in log["epochs"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [e["train_loss"] for e in log["epochs"]], marker="o", label="train")
    ax.plot(epochs, [e["val_loss"] for e in log["epochs"]], marker="o", label="validation")
    if log.get("base_val_loss") is not None:
        ax.axhline(log["base_val_loss"], color="grey", linestyle=":", label="validation, base model")
    if log.get("best_epoch"):
        ax.axvline(log["best_epoch"], color="black", linestyle="--", label=f"best epoch ({log['best_epoch']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per reference token")
    ax.set_title(f"LoRA training: {log.get('name', '')}" + (" (stopped early)" if log.get("stopped_early") else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
