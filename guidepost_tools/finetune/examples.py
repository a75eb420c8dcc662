"""Training examples: the prompt the server would give the VLM for a line, then the line's reference as the answer.

A line goes through what /process runs (decode_fields, the detector, the danger decision, the prompt templates,
the VLM's chat template and processor: guidepost.vlm.base.VLM.preprocess), so training and serving see the same
text. The reference's tokens, ended by the token that stops generation, are appended; they alone are labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from guidepost.errors import GuidepostError
from guidepost.scene import Limits, decode_fields

from ..batch.dataset import Sample

IGNORE = -100  # labels the loss skips: prompt, image and padding tokens
# Token-aligned inputs a processor returns beside input_ids, and what an answer or padding token gets in each.
_ANSWER_FILL = {"attention_mask": 1, "token_type_ids": 0, "mm_token_type_ids": 0}
_PAD_FILL = {"attention_mask": 0, "token_type_ids": 0, "mm_token_type_ids": 0, "labels": IGNORE}


class ExampleError(ValueError):
    """A line that cannot become a training example (the message names it)."""


@dataclass
class Example:
    """One line as model inputs (batch of one, on the CPU) and its labels."""

    sample_id: str
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    prompt: str
    kind: str  # danger or safe: which prompt the server would use

    @property
    def answer_tokens(self) -> int:
        """How many tokens the loss is computed on."""
        return int((self.labels != IGNORE).sum())


def build_examples(samples: list[Sample], pipeline, limits: Limits) -> list[Example]:
    """Each sample as the server would prompt the VLM with it, answered by its first reference."""
    eos = stop_token(pipeline.vlm)
    return [_example(sample, pipeline, limits, eos) for sample in samples]


def stop_token(vlm) -> int:
    """The token whose generation ends an answer (generation_config's eos, else the tokenizer's)."""
    eos = getattr(vlm.model.generation_config, "eos_token_id", None)
    eos = eos[0] if isinstance(eos, (list, tuple)) else eos
    return eos if eos is not None else vlm.processor.tokenizer.eos_token_id


def _example(sample: Sample, pipeline, limits: Limits, eos: int) -> Example:
    if sample.error or not sample.references:
        raise ExampleError(f"sample {sample.sample_id}: {sample.error or 'no reference to train on'}")
    images = [path.read_bytes() for path in sample.images]
    try:
        scene = decode_fields({"images": images, **sample.fields()}, limits, request_id=f"train-{sample.sample_id}")
    except GuidepostError as exc:
        raise ExampleError(f"sample {sample.sample_id} ({sample.record.get('image')}): {exc.message}") from None
    detections, _ = pipeline.detect(scene)
    kind, prompt = pipeline.prompt_for(scene, detections)
    inputs = pipeline.vlm.preprocess(list(scene.images), prompt)
    answer = pipeline.vlm.processor.tokenizer(sample.references[0], add_special_tokens=False)["input_ids"] + [eos]
    inputs, labels = append_answer(dict(inputs), answer)
    return Example(sample.sample_id, {key: value.cpu() for key, value in inputs.items()}, labels.cpu(), prompt, kind)


def append_answer(inputs: dict[str, torch.Tensor], answer: list[int]) -> tuple[dict, torch.Tensor]:
    """Inputs with the answer's tokens after the prompt, and labels that are the answer alone."""
    ids = inputs["input_ids"]
    length = ids.shape[1]
    answer_ids = torch.tensor([answer], dtype=ids.dtype, device=ids.device)
    out = {}
    for key, value in inputs.items():
        if key == "input_ids":
            out[key] = torch.cat([value, answer_ids], dim=1)
        elif _token_aligned(value, length):
            if key not in _ANSWER_FILL:
                raise ExampleError(f"the processor returned an unknown per-token input '{key}'")
            out[key] = torch.cat([value, torch.full_like(answer_ids, _ANSWER_FILL[key])], dim=1)
        else:
            out[key] = value
    labels = torch.cat([torch.full((1, length), IGNORE, dtype=torch.long, device=ids.device), answer_ids.long()], 1)
    return out, labels


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """A batch: token-aligned inputs and labels padded on the right, image tensors concatenated."""
    length = max(example.labels.shape[1] for example in examples)
    batch = {}
    for key in [*examples[0].inputs, "labels"]:
        values = [example.labels if key == "labels" else example.inputs[key] for example in examples]
        if key == "labels" or key == "input_ids" or key in _ANSWER_FILL:
            fill = pad_id if key == "input_ids" else _PAD_FILL[key]
            batch[key] = torch.cat([_pad_right(value, length, fill) for value in values])
        elif len({tuple(value.shape[1:]) for value in values}) == 1:
            batch[key] = torch.cat(values)
        else:
            raise ExampleError(f"'{key}' differs in shape between lines (a different number of images or tiles), "
                               "so these lines cannot share a batch: use --batch-size 1 with --grad-accum")
    return batch


def _token_aligned(value, length: int) -> bool:
    return torch.is_tensor(value) and value.dim() == 2 and value.shape[0] == 1 and value.shape[1] == length \
        and not value.is_floating_point()


def _pad_right(value: torch.Tensor, length: int, fill: int) -> torch.Tensor:
    padding = torch.full((value.shape[0], length - value.shape[1]), fill, dtype=value.dtype)
    return torch.cat([value, padding], dim=1)
