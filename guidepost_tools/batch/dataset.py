"""JSONL dataset lines → samples: image paths, question, client objects, references and hazard labels."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

# Multi-image reasoning datasets inline their images in the question: <image_start>[problem_image_1]<image_end>.
_PLACEHOLDER = re.compile(r"<image_start>\[(problem_image_\d+)\]<image_end>")


class SampleError(ValueError):
    """A dataset line that cannot become a sample; the batch records it and goes on."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Sample:
    """One dataset line, resolved: what to send to /process and what to compare the answer with."""

    index: int
    record: dict
    images: list[Path] = field(default_factory=list)
    text: str | None = None
    objects: list[str] | str | None = None
    lang: str | None = None
    task: str | None = None
    mode: str | None = None
    deadline_ms: int | None = None
    references: list[str] = field(default_factory=list)
    hazards: list[str] | None = None  # None: the line has no hazard labels
    error: SampleError | None = None  # set when the line itself is unusable

    @property
    def sample_id(self) -> str:
        """Stable id: the line's position among the file's non-blank lines."""
        return f"{self.index:06d}"

    def fields(self) -> dict:
        """The optional /process fields this sample sends (images are sent separately)."""
        values = {"text": self.text, "objects": self.objects, "lang": self.lang, "task": self.task, "mode": self.mode,
                  "deadline_ms": self.deadline_ms}
        return {key: value for key, value in values.items() if value is not None}


def read_samples(path: Path, start: int = 0, end: int | None = None) -> list[Sample]:
    """Samples start..end-1 (positions among non-blank lines); unusable lines come back with .error set."""
    samples = []
    with open(path, encoding="utf-8") as lines:
        index = -1
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            index += 1
            if index < start or (end is not None and index >= end):
                continue
            samples.append(_parse(index, number, line, path.parent))
    return samples


def _parse(index: int, number: int, line: str, base: Path) -> Sample:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return Sample(index, {"line": line.rstrip("\n")[:200]},
                      error=SampleError("invalid_line", f"line {number} is not JSON: {exc.msg}"))
    if not isinstance(record, dict):
        return Sample(index, {"line": record}, error=SampleError("invalid_line", f"line {number} is not a JSON object"))
    try:
        return _from_record(index, record, base)
    except SampleError as exc:
        return Sample(index, record, error=exc)


def _from_record(index: int, record: dict, base: Path) -> Sample:
    if "image" in record:
        images = record["image"] if isinstance(record["image"], list) else [record["image"]]
        text = record.get("text")
        references = record.get("reference")
        references = [] if references is None else references if isinstance(references, list) else [references]
    elif isinstance(record.get("Question"), str):
        names = _PLACEHOLDER.findall(record["Question"])
        if not names:
            raise SampleError("invalid_line", "'Question' has no <image_start>[problem_image_N]<image_end> placeholder")
        missing = [name for name in names if not isinstance(record.get(name), str)]
        if missing:
            raise SampleError("invalid_line", f"the question refers to {missing} but the line has no such path")
        images = [record[name] for name in names]
        # The VLM receives the images in placeholder order; the text keeps where each one was.
        counter = iter(range(1, len(names) + 1))
        text = _PLACEHOLDER.sub(lambda _: f"(image {next(counter)})", record["Question"]).strip()
        references = [record[key] for key in ("Final Answer", "Text Reasoning Trace") if record.get(key)]
    else:
        raise SampleError("invalid_line", "a line needs 'image' (a path or a list of paths) or a multi-image 'Question'")

    if not images or not all(isinstance(image, str) and image for image in images):
        raise SampleError("invalid_line", "'image' must be a path or a non-empty list of paths")
    if not all(isinstance(reference, str) for reference in references):
        raise SampleError("invalid_line", "'reference' must be a string or a list of strings")
    hazards = record.get("hazards")
    if hazards is not None and not (isinstance(hazards, list) and all(isinstance(h, str) for h in hazards)):
        raise SampleError("invalid_line", "'hazards' must be a list of labels ([] for a scene without hazards)")
    return Sample(index, record, images=[_resolve(image, base) for image in images], text=text,
                  objects=record.get("objects"), lang=record.get("lang"), task=record.get("task"),
                  mode=record.get("mode"), deadline_ms=record.get("deadline_ms"),
                  references=references, hazards=hazards)


def _resolve(image: str, base: Path) -> Path:
    path = Path(image).expanduser()
    return path if path.is_absolute() else base / path
