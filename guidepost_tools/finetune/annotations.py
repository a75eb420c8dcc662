"""Annotation files for fine-tuning: a template over a folder of images, checks before use, an 80/20 split."""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from guidepost.container_codes import check_digit
from guidepost.errors import GuidepostError
from guidepost.files import atomic_write
from guidepost.images import decode_image
from guidepost.scene import Limits

from ..batch.dataset import read_samples

TODO = "TODO"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
CONTAINER_FIELDS = ("owner", "serial", "check_digit")
# In an annotation `owner` is the four letters as painted: the owner code and the category letter (CSQU).
_OWNER, _SERIAL, _DIGIT = re.compile(r"[A-Z]{3}[UJZ]"), re.compile(r"\d{6}"), re.compile(r"\d")


@dataclass(frozen=True)
class Problem:
    """Why one annotation line cannot be used, with where it is."""

    line: int  # 1-based line number in the file
    image: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line} ({self.image}): {self.message}"


def template_lines(images_dir: Path, output: Path, task: str | None) -> list[dict]:
    """One line per image under images_dir (sorted; paths relative to the output file's folder), reference TODO."""
    images = sorted(p for p in images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    lines = []
    for image in images:
        line = {"image": Path(os.path.relpath(image.resolve(), output.resolve().parent)).as_posix()}
        if task:
            line["task"] = task
        line["reference"] = TODO
        if task == "read":
            line["container"] = {name: "" for name in CONTAINER_FIELDS}
        lines.append(line)
    return lines


def write_jsonl(path: Path, lines: list[dict]) -> None:
    """One JSON object per line, UTF-8, written whole or not at all."""
    atomic_write(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))


def check_annotations(path: Path, limits: Limits) -> tuple[list[dict], list[Problem], list[str]]:
    """(lines, problems, warnings): a line still marked TODO, an image that does not decode or a malformed
    container label is a problem; a labelled container code whose check digit does not match is a warning."""
    samples = read_samples(path)
    numbers = _line_numbers(path)
    lines, problems, warnings = [], [], []
    for sample in samples:
        number = numbers[sample.index]
        image = str(sample.record.get("image", "?"))
        if sample.error:
            problems.append(Problem(number, image, str(sample.error)))
            continue
        lines.append(sample.record)
        if not sample.references or any(not ref.strip() or ref.strip() == TODO for ref in sample.references):
            problems.append(Problem(number, image, f"reference is still {TODO} (or empty): label it"))
        for image_path in sample.images:
            message = _undecodable(image_path, limits)
            if message:
                problems.append(Problem(number, str(image_path), message))
        try:
            code = expected_code(sample.record)
        except ValueError as exc:
            problems.append(Problem(number, image, str(exc)))
            continue
        if code and check_digit(code[:10]) != int(code[10]):
            warnings.append(f"line {number} ({image}): container {code} has a check digit that does not match "
                            f"(expected {check_digit(code[:10])}); kept as painted")
    return lines, problems, warnings


def expected_code(record: dict) -> str | None:
    """The labelled container code (owner + serial + check digit), None when the line has none; ValueError if
    the label is malformed."""
    container = record.get("container")
    if container is None:
        return None
    if not isinstance(container, dict):
        raise ValueError('"container" must be an object {"owner", "serial", "check_digit"}')
    values = {name: str(container.get(name, "")).strip().upper() for name in CONTAINER_FIELDS}
    if not any(values.values()):
        return None  # a read line without a container code in view (a sign, a bus number)
    for name, pattern, want in (("owner", _OWNER, "four letters ending in U, J or Z (owner code + category: CSQU)"),
                                ("serial", _SERIAL, "six digits"), ("check_digit", _DIGIT, "one digit")):
        if not pattern.fullmatch(values[name]):
            raise ValueError(f"container {name} {values[name]!r} must be {want}")
    return values["owner"] + values["serial"] + values["check_digit"]


def split_lines(lines: list[dict], val_share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded shuffle cut into (train, val), val holding round(share x lines) lines, at least one each."""
    if len(lines) < 2:
        raise ValueError(f"a split needs at least 2 labelled lines; the file has {len(lines)}")
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    n_val = min(max(1, round(val_share * len(lines))), len(lines) - 1)
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [lines[i] for i in train], [lines[i] for i in val]


def rebase_images(line: dict, source_dir: Path, target_dir: Path) -> dict:
    """The line with relative image paths made relative to target_dir (a split written to another folder)."""
    def rebase(path: str) -> str:
        if Path(path).expanduser().is_absolute():
            return path
        return Path(os.path.relpath((source_dir / path).resolve(), target_dir.resolve())).as_posix()

    images = line["image"]
    return {**line, "image": [rebase(p) for p in images] if isinstance(images, list) else rebase(images)}


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (the manifest records which data an adapter was trained on)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _undecodable(path: Path, limits: Limits) -> str | None:
    try:
        decode_image(path.read_bytes(), max_pixels=limits.max_image_pixels, max_side=limits.image_max_side)
    except FileNotFoundError:
        return "image file not found"
    except OSError as exc:
        return f"cannot read the image: {exc.strerror}"
    except GuidepostError as exc:
        return f"image does not decode: {exc.message}"
    return None


def _line_numbers(path: Path) -> list[int]:
    """The 1-based file line number of each non-blank line (read_samples counts non-blank lines only)."""
    with open(path, encoding="utf-8") as handle:
        return [number for number, line in enumerate(handle, start=1) if line.strip()]
