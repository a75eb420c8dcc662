"""`flask finetune prepare|split|train`: annotate a folder of photos, split it, train a LoRA adapter for a preset."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

TASKS = ("describe", "read")


@click.group("finetune")
def finetune_command():
    """Fine-tune the VLM with LoRA on your own labelled photos, then serve the adapter.

    prepare → label the references by hand → split → train → serve with GUIDEPOST_ADAPTER=NAME
    (or vlm.adapter in a preset) → flask batch + flask evaluate --compare base tuned.
    """


@finetune_command.command("prepare")
@click.option("--images", "images_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of photos (searched recursively; JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF).")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The annotation file to write (JSONL); image paths are relative to its folder.")
@click.option("--task", type=click.Choice(TASKS), default=None,
              help="Task of every line; `read` adds empty container fields (owner, serial, check_digit) to fill.")
@click.option("--force", is_flag=True, help="Overwrite an existing annotation file (your labels in it are lost).")
def prepare_command(images_dir: Path, output: Path, task: str | None, force: bool):
    """Write an annotation template: one line per photo with reference "TODO" to replace by hand."""
    from ..finetune.annotations import template_lines, write_jsonl

    if output.exists() and not force:
        raise click.ClickException(f"{output} exists and may hold labels; give --force to overwrite it")
    lines = template_lines(images_dir, output, task)
    if not lines:
        raise click.ClickException(f"no images under {images_dir}")
    write_jsonl(output, lines)
    click.echo(f"wrote {len(lines)} lines to {output}: replace each \"TODO\" reference with the text to answer"
               + (", and fill container owner (4 letters, e.g. CSQU), serial and check_digit where a container code "
                  "is in view" if task == "read" else ""))


@finetune_command.command("split")
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--val", "val_share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True, help="Share of lines for validation.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the shuffle before the cut.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where train.jsonl, val.jsonl and split.json go (default: the annotation file's folder).")
@click.option("--force", is_flag=True, help="Overwrite an existing train.jsonl / val.jsonl.")
@with_appcontext
def split_command(annotations: Path, val_share: float, seed: int, output_dir: Path | None, force: bool):
    """Split labelled annotations into train.jsonl and val.jsonl (seeded); refuse TODO lines and broken images."""
    from ..finetune.annotations import file_sha256, rebase_images, split_lines, write_jsonl

    lines = _checked(annotations, "annotations")
    output_dir = output_dir or annotations.parent
    paths = {name: output_dir / f"{name}.jsonl" for name in ("train", "val")}
    existing = [str(path) for path in paths.values() if path.exists()]
    if existing and not force:
        raise click.ClickException(f"{', '.join(existing)} exist; give --force to overwrite")
    train, val = split_lines(lines, val_share, seed)
    for name, part in (("train", train), ("val", val)):
        write_jsonl(paths[name], [rebase_images(line, annotations.parent, output_dir) for line in part])
    record = {"source": {"path": str(annotations.resolve()), "sha256": file_sha256(annotations)}, "seed": seed,
              "val_share": val_share, "lines": {"train": len(train), "val": len(val)},
              "sha256": {name: file_sha256(path) for name, path in paths.items()}}
    (output_dir / "split.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    click.echo(f"train: {len(train)} lines → {paths['train']}\nval: {len(val)} lines → {paths['val']}")


@finetune_command.command("train")
@click.option("--preset", default=None, help="Preset whose VLM is fine-tuned (default: GUIDEPOST_PRESET).")
@click.option("--train", "train_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Training lines (train.jsonl from `flask finetune split`).")
@click.option("--val", "val_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Validation lines: early stopping watches their loss.")
@click.option("--output", required=True,
              help="Adapter name (written to <model cache>/adapters/NAME/) or a folder path.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True, help="Most epochs to run.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Lines per step.")
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
              help="Steps whose gradients add up before each optimizer update.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True,
              help="AdamW learning rate.")
@click.option("--lora-r", type=click.IntRange(min=1), default=None, help="LoRA rank (default: the preset's vlm.lora.r).")
@click.option("--lora-alpha", type=click.IntRange(min=1), default=None,
              help="LoRA alpha (default: the preset's vlm.lora.alpha).")
@click.option("--lora-dropout", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="LoRA dropout (default: the preset's vlm.lora.dropout).")
@click.option("--patience", type=click.IntRange(min=1), default=10, show_default=True,
              help="Stop after this many epochs without a lower validation loss; the best epoch's adapter is kept.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of LoRA's initialisation and the order.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where to train (default: the preset's device; auto picks CUDA when there is a GPU).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16"]), default=None,
              help="Base model dtype (default: the preset's; auto is bfloat16 on CUDA, float32 on the CPU). "
                   "LoRA weights stay float32.")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=False, show_default=True,
              help="Recompute activations in the backward pass: less memory, more time.")
@click.option("--force", is_flag=True, help="Replace an existing adapter of the same name.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
@with_appcontext
def train_command(preset, train_path: Path, val_path: Path, output: str, epochs, batch_size, grad_accum, lr, lora_r,
                  lora_alpha, lora_dropout, patience, seed, device, dtype, gradient_checkpointing, force, progress):
    """Train a LoRA adapter on the preset's VLM with the prompts the server would use, keeping the best epoch.

    Labels are the reference tokens only; loss per epoch goes to training_log.json and
    loss_curve.png beside the adapter, with a manifest (guidepost-adapter.json) of how it was made.
    """
    from guidepost import ModelLoadError

    from ..finetune.run import TrainingRequest, run_training

    request = TrainingRequest(
        preset=preset, train=train_path, val=val_path, output=output, epochs=epochs, batch_size=batch_size,
        grad_accum=grad_accum, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        patience=patience, seed=seed, device=device, dtype=dtype, gradient_checkpointing=gradient_checkpointing,
        force=force, progress=progress)
    for path, what in ((train_path, "training"), (val_path, "validation")):
        _checked(path, what)
    started = time.perf_counter()
    try:
        folder, history = run_training(current_app.extensions["guidepost"], request, echo=click.echo)
    except (FileExistsError, ValueError, ModelLoadError) as exc:
        raise click.ClickException(str(exc)) from None
    best = history.epochs[history.best_epoch - 1]
    click.echo(f"best epoch {history.best_epoch} of {len(history.epochs)}"
               + (" (stopped early)" if history.stopped_early else "")
               + f": validation loss {best['val_loss']:.4f} (base model {history.base_val_loss:.4f}); "
               f"{time.perf_counter() - started:.1f} s in all")
    click.echo(f"adapter: {folder}\nserve it: GUIDEPOST_ADAPTER={folder.name} (preset "
               f"'{request.preset or current_app.extensions['guidepost'].preset.name}')")


def _checked(path: Path, what: str) -> list[dict]:
    """The file's lines, or a ClickException listing every line still TODO, every broken image and bad label."""
    from ..finetune.annotations import check_annotations

    lines, problems, warnings = check_annotations(path, current_app.extensions["guidepost"].limits)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if problems:
        listed = "\n  ".join(str(problem) for problem in problems)
        raise click.ClickException(f"{path}: {len(problems)} problem(s) in the {what} lines; fix them first:\n  {listed}")
    return lines
