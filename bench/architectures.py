"""Real architecture sizes, written from the public model configs, built with random weights for the benchmarks.

Speed does not depend on weight values, so these measure what the real models cost without a download.
Each model is built once under <cache>/bench/<name>/.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from guidepost import tiny
from guidepost.files import build_once

# SmolVLM-256M-Instruct (HuggingFaceTB): SigLIP base patch16 at 512 px, pixel shuffle x4 → 64 tokens a tile.
SMOLVLM_256M = {
    "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
    "text": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
             "num_key_value_heads": 3, "vocab_size": 49280, "max_position_embeddings": 8192, "rope_theta": 100000.0,
             "tie_word_embeddings": True, "initializer_range": 0.02},
    "image_size": 512, "patch": 16, "scale": 4,
}
# Qwen2-0.5B (text) + CLIP ViT-B/32 at 224 px (vision): a 0.58B LLaVA with 49 image tokens.
LLAVA_QWEN2_05B = {
    "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
    "text": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
             "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
             "rope_theta": 1000000.0, "tie_word_embeddings": True, "initializer_range": 0.02},
    "image_size": 224, "patch": 32,
}


def build_smolvlm_256m(folder: Path) -> None:
    """SmolVLM-256M-Instruct's architecture with SmolVLM's processor."""
    spec = SMOLVLM_256M
    tiny.build_random_idefics3(folder, vision=spec["vision"], text=spec["text"], image_size=spec["image_size"],
                               patch=spec["patch"], scale=spec["scale"])


def build_smollm2_135m(folder: Path, cache: Path) -> None:
    """SmolVLM-256M's language model (SmolLM2-135M) with the same weights, as a plain causal LM."""
    from transformers import AutoTokenizer, Idefics3ForConditionalGeneration, LlamaForCausalLM

    vlm = built(cache, "smolvlm-256m-random", build_smolvlm_256m)
    model = Idefics3ForConditionalGeneration.from_pretrained(vlm)
    text = LlamaForCausalLM(model.config.text_config)
    text.model.load_state_dict(model.model.text_model.state_dict())
    text.tie_weights()
    text.save_pretrained(folder)
    AutoTokenizer.from_pretrained(vlm).save_pretrained(folder)


def build_llava_qwen2_05b(folder: Path) -> None:
    """The 0.58B LLaVA (Qwen2-0.5B + CLIP ViT-B/32)."""
    spec = LLAVA_QWEN2_05B
    tiny.build_random_llava(folder, vision=spec["vision"], text=spec["text"], image_size=spec["image_size"],
                            patch=spec["patch"], text_family="qwen2")


def build_clip_vit_b_32(folder: Path) -> None:
    """OpenCLIP ViT-B/32 in a folder that open_clip loads with local-dir:<folder>."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    config = {"model_cfg": open_clip.get_model_config("ViT-B-32"), "preprocess_cfg": {"resize_mode": "squash"}}
    model = open_clip.CLIP(**config["model_cfg"])
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))


def built(cache: Path, name: str, build: Callable[[Path], None]) -> Path:
    """cache/bench/<name>/, built once (into a staging folder renamed into place, under a file lock)."""
    folder = Path(cache) / "bench" / name

    def build_complete(staging: Path) -> None:
        build(staging)
        (staging / "COMPLETE").write_text("random weights\n")

    build_once(folder, build_complete, lambda target: (target / "COMPLETE").exists())
    return folder
