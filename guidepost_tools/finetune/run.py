"""One training run: load the preset through the server's loading code, build examples, train, write the adapter."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from guidepost import Guidepost
from guidepost.adapters import NONE, adapter_folder

from ..batch.dataset import read_samples
from .annotations import file_sha256
from .artifacts import manifest, write_adapter
from .examples import build_examples
from .training import History, HyperParameters, add_lora, train


@dataclass(frozen=True)
class TrainingRequest:
    """The options of `flask finetune train` (None: the preset's value)."""

    preset: str | None
    train: Path
    val: Path
    output: str
    epochs: int = 30
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 1e-4
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    patience: int = 10
    seed: int = 0
    device: str | None = None
    dtype: str | None = None
    gradient_checkpointing: bool = False
    force: bool = False
    progress: bool = True


def run_training(ext: Guidepost, request: TrainingRequest, echo=print) -> tuple[Path, History]:
    """Train an adapter for request.preset and write its folder; (folder, history)."""
    settings = ext.settings.model_copy(update={
        "preset": request.preset or ext.settings.preset, "backend": "torch", "adapter": NONE,
        "device": request.device or ext.settings.device, "dtype": request.dtype or ext.settings.dtype})
    trainer = Guidepost(settings)  # the same preset, prompts, vocabulary and limits a worker would have
    target = adapter_folder(request.output, settings.model_cache)
    if target.exists() and not request.force:
        raise FileExistsError(f"adapter {target} exists; give --force to replace it")
    spec = trainer.preset.vlm
    hp = HyperParameters(epochs=request.epochs, batch_size=request.batch_size, grad_accum=request.grad_accum,
                         lr=request.lr, lora_r=request.lora_r or spec.lora.r,
                         lora_alpha=request.lora_alpha or spec.lora.alpha,
                         lora_dropout=spec.lora.dropout if request.lora_dropout is None else request.lora_dropout,
                         target_modules=spec.lora.target_modules, patience=request.patience, seed=request.seed,
                         gradient_checkpointing=request.gradient_checkpointing)
    echo(f"loading preset '{trainer.preset.name}' ({spec.id})…")
    trainer.ensure_loaded()
    pipeline = trainer.pipeline
    samples = {"train": read_samples(request.train), "val": read_samples(request.val)}
    empty = [name for name, part in samples.items() if not part]
    if empty:
        raise ValueError(f"no {' and no '.join(empty)} lines to train with")
    echo("rendering prompts and tokenizing (the detector decides danger or safe for each line, as when serving)…")
    examples = {name: build_examples(part, pipeline, trainer.limits) for name, part in samples.items()}
    vlm = pipeline.vlm
    model = add_lora(vlm.model, hp)
    trainable, total = model.get_nb_trainable_parameters()
    echo(f"LoRA r={hp.lora_r} alpha={hp.lora_alpha}: {trainable:,} trainable of {total:,} parameters; "
         f"{len(examples['train'])} training and {len(examples['val'])} validation lines on {vlm.device} ({vlm.dtype})")
    tokenizer = vlm.processor.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    history = train(model, examples["train"], examples["val"], hp, pad_id=pad_id, device=vlm.device,
                    progress=request.progress, on_epoch=lambda record: echo(_epoch_line(record)))
    device, dtype = str(vlm.device), str(vlm.dtype).removeprefix("torch.")
    info = manifest(target.name, spec=spec, preset=trainer.preset.name, model_type=vlm.model.config.model_type,
                    datasets={name: _dataset(path, len(samples[name]))
                              for name, path in (("train", request.train), ("val", request.val))},
                    split=_split(request.train), prompts=_prompt_files(trainer, samples),
                    hyperparameters=hp.as_dict(), history=history,
                    parameters={"trainable": trainable, "total": total}, device=device, dtype=dtype)
    log = {"name": target.name, "epochs": history.epochs, "base_val_loss": history.base_val_loss,
           "best_epoch": history.best_epoch, "stopped_early": history.stopped_early,
           "examples": {name: {"lines": len(part), "answer_tokens": sum(e.answer_tokens for e in part),
                               "prompts": dict(Counter(e.kind for e in part))} for name, part in examples.items()},
           "device": device, "dtype": dtype}
    write_adapter(target, model, history.best_state, vlm.processor, info, log)
    return target, history


def _epoch_line(record: dict) -> str:
    return (f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, validation loss "
            f"{record['val_loss']:.4f} ({record['samples_per_s']:.2f} samples/s, peak {record['peak_memory_mb']:.0f} MB)")


def _dataset(path: Path, lines: int) -> dict:
    return {"path": str(Path(path).resolve()), "sha256": file_sha256(path), "lines": lines}


def _split(train_path: Path) -> dict | None:
    """The split.json beside train.jsonl (seed, share, source), when it describes this very file."""
    try:
        split = json.loads((Path(train_path).parent / "split.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return split if split.get("sha256", {}).get("train") == file_sha256(train_path) else None


def _prompt_files(trainer: Guidepost, samples: dict) -> dict:
    """sha256 of each prompt file the lines used: serving with other prompts is serving another text."""
    pairs = sorted({(s.task or "describe", s.lang or "en") for part in samples.values() for s in part})
    folder = trainer.settings.prompts_dir
    return {f"{task}/{lang}.yaml": file_sha256(folder / task / f"{lang}.yaml") for task, lang in pairs}
