"""LoRA adapters (`flask finetune train`): found by name or path, checked against the base model, merged at load."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from .presets import VLMSpec

MANIFEST = "guidepost-adapter.json"
CONFIG = "adapter_config.json"
NONE = "none"  # GUIDEPOST_ADAPTER=none serves the base model of a preset that names an adapter


class Adapter(BaseModel):
    """One adapter folder: its name, where it is, a hash of its weights and config, and its training manifest."""

    model_config = ConfigDict(frozen=True)

    name: str
    path: Path
    sha256: str
    manifest: dict

    def describe(self) -> dict:
        """What /info shows: name, folder, hash and the manifest (base model, data, hyper-parameters, losses)."""
        return {"name": self.name, "path": str(self.path), "sha256": self.sha256, "manifest": self.manifest}


def adapter_folder(ref: str, cache: Path) -> Path:
    """A bare name → <model cache>/adapters/<name>; anything with a slash (or ~) is a folder path."""
    if "/" in ref or "\\" in ref or ref.startswith("~"):
        return Path(ref).expanduser().resolve()
    return Path(cache) / "adapters" / ref


def resolve_adapter(ref: str, cache: Path, spec: VLMSpec, preset: str) -> Adapter | None:
    """The adapter `ref` names, checked against the preset's VLM; ValueError saying what to do when it cannot be."""
    if not ref or ref == NONE:
        return None
    folder = adapter_folder(ref, cache)
    if not (folder / CONFIG).is_file():
        raise ValueError(
            f"adapter '{ref}' not found: {folder} holds no {CONFIG}. Preset '{preset}' needs an adapter trained for "
            f"'{spec.id}' (revision {spec.revision}): `flask finetune train --preset {preset} --output {folder.name}` "
            f"writes one to <model cache>/adapters/{folder.name}; or set GUIDEPOST_ADAPTER=none to serve the base model")
    manifest = _read_json(folder / MANIFEST)
    base = manifest.get("base") or {}
    base_id = base.get("id") or _read_json(folder / CONFIG).get("base_model_name_or_path")
    base_revision = base.get("revision", spec.revision)
    if not base_id:
        raise ValueError(f"adapter '{ref}' ({folder}) names no base model (no {MANIFEST}, no base_model_name_or_path "
                         f"in {CONFIG}): train it with `flask finetune train --preset {preset}`")
    if (base_id, base_revision) != (spec.id, spec.revision):
        raise ValueError(
            f"adapter '{ref}' ({folder}) was trained for base model '{base_id}' (revision {base_revision}), but preset "
            f"'{preset}' serves '{spec.id}' (revision {spec.revision}). It needs base model '{base_id}': serve it with "
            f"a preset whose vlm.id is '{base_id}', or train an adapter for this preset with "
            f"`flask finetune train --preset {preset}`")
    return Adapter(name=folder.name, path=folder, sha256=weights_hash(folder), manifest=manifest)


def weights_hash(folder: Path) -> str:
    """sha256 over the adapter's config and weights: a retrained adapter has a new hash (and a new OpenVINO IR)."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("adapter_*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def merge_into(model, adapter: Adapter):
    """The model with the adapter's LoRA weights merged in (merge_and_unload): it then runs as fast as the base."""
    from peft import PeftModel  # only a deployment that serves an adapter imports peft

    return PeftModel.from_pretrained(model, str(adapter.path)).merge_and_unload()


def save_merged(model_ref: str, spec: VLMSpec, adapter: Adapter, cache_dir: Path, target: Path) -> None:
    """Write the base model with the adapter merged (float32) and its processor: a plain model folder to export."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    hub = {"revision": spec.revision, "cache_dir": str(Path(cache_dir) / "hf")}
    model = AutoModelForImageTextToText.from_pretrained(model_ref, dtype=torch.float32, **hub)
    merge_into(model, adapter).save_pretrained(target)
    AutoProcessor.from_pretrained(model_ref, **hub).save_pretrained(target)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
