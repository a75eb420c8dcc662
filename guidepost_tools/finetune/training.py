"""LoRA training of the VLM's language model: loss on the reference tokens, early stopping on validation loss."""
from __future__ import annotations

import math
import re
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .examples import IGNORE, Example, collate


@dataclass(frozen=True)
class HyperParameters:
    """Everything that shapes a training run (recorded in the adapter's manifest)."""

    epochs: int
    batch_size: int
    grad_accum: int
    lr: float
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: str
    patience: int
    seed: int
    gradient_checkpointing: bool

    def as_dict(self) -> dict:
        """The values, for the manifest."""
        return asdict(self)


@dataclass
class History:
    """Per-epoch losses and throughput, the best epoch and why training stopped."""

    epochs: list[dict] = field(default_factory=list)
    base_val_loss: float | None = None  # the base model's validation loss, before any training
    best_epoch: int | None = None
    stopped_early: bool = False
    best_state: dict | None = None  # the best epoch's adapter weights (CPU copies)

    def losses(self) -> list[dict]:
        """epoch, train_loss and val_loss of every epoch run."""
        return [{k: epoch[k] for k in ("epoch", "train_loss", "val_loss")} for epoch in self.epochs]


def add_lora(model, hp: HyperParameters):
    """The model wrapped by peft with LoRA on the modules hp.target_modules matches (full match); all else frozen."""
    from peft import LoraConfig, get_peft_model

    matched = [name for name, _ in model.named_modules() if re.fullmatch(hp.target_modules, name)]
    if not matched:
        raise ValueError(f"LoRA target_modules {hp.target_modules!r} matches no module of {type(model).__name__}; "
                         "set vlm.lora.target_modules in the preset to the language model's projections")
    torch.manual_seed(hp.seed)  # LoRA's A matrices start random: the seed makes a run repeatable
    config = LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                        target_modules=hp.target_modules, bias="none")
    peft_model = get_peft_model(model, config)
    if hp.gradient_checkpointing:
        # Recompute activations in the backward pass: less memory, about a third more time.
        peft_model.base_model.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return peft_model


def token_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy over the label tokens, how many there are): next-token prediction, labels shifted."""
    labels = batch.pop("labels")
    logits = model(**batch, use_cache=False).logits[:, :-1].float()
    targets = labels[:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE,
                           reduction="sum")
    return loss, int((targets != IGNORE).sum())


def mean_loss(model, examples: list[Example], batch_size: int, pad_id: int, device) -> float:
    """Token-weighted mean loss over examples, in eval mode (no dropout)."""
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(examples), batch_size):
            loss, tokens = token_loss(model, _to(collate(examples[start:start + batch_size], pad_id), device))
            total, count = total + loss.item(), count + tokens
    return total / count


def train(model, train_set: list[Example], val_set: list[Example], hp: HyperParameters, *, pad_id: int, device,
          progress: bool = True, on_epoch=None) -> History:
    """Train the LoRA weights of a peft model; stop after hp.patience epochs without a better validation loss.

    The best epoch's adapter weights are kept in History.best_state; on_epoch(record) is called after each epoch.
    """
    from peft import get_peft_model_state_dict

    history = History(base_val_loss=mean_loss(model, val_set, hp.batch_size, pad_id, device))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=hp.lr, weight_decay=0.0)
    order = torch.Generator().manual_seed(hp.seed)
    best_val = float("inf")
    for epoch in range(1, hp.epochs + 1):
        started = time.perf_counter()
        train_loss = _epoch(model, optimizer, train_set, hp, order, pad_id, device,
                            tqdm(desc=f"epoch {epoch}/{hp.epochs}", total=len(train_set), unit="sample",
                                 disable=not progress, dynamic_ncols=True, leave=False))
        seconds = time.perf_counter() - started
        val_loss = mean_loss(model, val_set, hp.batch_size, pad_id, device)
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "seconds": round(seconds, 3),
                  "samples_per_s": round(len(train_set) / seconds, 3), "peak_memory_mb": peak_memory_mb(device)}
        history.epochs.append(record)
        if not math.isfinite(val_loss) or not math.isfinite(train_loss):
            raise ValueError(f"epoch {epoch}: the loss is {train_loss} (training), {val_loss} (validation): "
                             "training diverged; lower --lr, or train in float32")
        if val_loss < best_val:
            best_val, history.best_epoch = val_loss, epoch
            history.best_state = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}
        if on_epoch:
            on_epoch(record)
        if epoch - history.best_epoch >= hp.patience:
            history.stopped_early = epoch < hp.epochs
            break
    return history


def _epoch(model, optimizer, examples: list[Example], hp: HyperParameters, order: torch.Generator, pad_id: int,
           device, bar) -> float:
    """One pass over the shuffled examples; the token-weighted mean training loss."""
    model.train()
    shuffled = [examples[i] for i in torch.randperm(len(examples), generator=order).tolist()]
    batches = [shuffled[start:start + hp.batch_size] for start in range(0, len(shuffled), hp.batch_size)]
    total, count = 0.0, 0
    optimizer.zero_grad(set_to_none=True)
    for step, batch in enumerate(batches, start=1):
        loss, tokens = token_loss(model, _to(collate(batch, pad_id), device))
        (loss / tokens / hp.grad_accum).backward()
        if step % hp.grad_accum == 0 or step == len(batches):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        total, count = total + loss.item(), count + tokens
        bar.update(len(batch))
        bar.set_postfix(loss=f"{total / count:.4f}")
    bar.close()
    return total / count


def peak_memory_mb(device) -> float:
    """Peak memory so far: CUDA's allocator peak on a GPU, else the process's peak resident set."""
    if torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    try:  # VmHWM starts afresh at exec; ru_maxrss would carry a forking parent's peak into a child process
        line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
        return round(int(line.split()[1]) / 1024, 1)
    except (OSError, StopIteration):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _to(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in batch.items()}
