"""Presets folders for the benchmarks: shipped presets as dicts to adjust, written beside the shipped vocabulary."""
from __future__ import annotations

from pathlib import Path

import yaml

MODELS = Path(__file__).resolve().parent.parent / "models"


def shipped(name: str) -> dict:
    """models/<name>.yaml, to adjust."""
    return yaml.safe_load((MODELS / f"{name}.yaml").read_text())


def decode_exactly(preset: dict, max_new_tokens: int) -> dict:
    """The preset with every answer decoding max_new_tokens tokens: random weights must not stop early, or runs
    would decode different numbers of tokens."""
    preset["vlm"].update(max_new_tokens=max_new_tokens, generate_kwargs={"min_new_tokens": max_new_tokens})
    return preset


def write_presets(folder: Path, **presets: dict) -> Path:
    """folder (a GUIDEPOST_PRESETS_DIR) holding each preset as <name>.yaml and the shipped vocabulary."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, preset in presets.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(preset))
    (folder / "vocabulary.yaml").write_text((MODELS / "vocabulary.yaml").read_text())
    return folder
