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

# llava-hf/llava-1.5-7b-hf: CLIP ViT-L/14 at 336 px (576 image tokens) + Vicuna-7B (Llama-2-7B).
LLAVA_15_7B = {
    "vision": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16},
    "text": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "vocab_size": 32064, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
             "initializer_range": 0.02},
    "image_size": 336, "patch": 14,
}
# Qwen/Qwen2.5-VL-3B-Instruct: a windowed ViT (32 blocks, patch 14, 2x2 merge) + a 36-layer Qwen2.5 text model.
QWEN2_5_VL_3B = {
    "vision": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "window_size": 112,
               "fullatt_block_indexes": [7, 15, 23, 31]},
    "text": {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16,
             "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 128000,
             "tie_word_embeddings": True, "initializer_range": 0.02},
    "patch": 14, "merge": 2, "min_pixels": 3136, "max_pixels": 12845056, "mrope_section": [16, 24, 24],
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


def build_llava_15_7b(folder: Path) -> None:
    """LLaVA-1.5-7B's architecture (build it with torch's default device and dtype set: cuda, bfloat16)."""
    spec = LLAVA_15_7B
    tiny.build_random_llava(folder, vision=spec["vision"], text=spec["text"], image_size=spec["image_size"],
                            patch=spec["patch"], text_family="llama")


def build_qwen2_5_vl_3b(folder: Path) -> None:
    """Qwen2.5-VL-3B's architecture (build it with torch's default device and dtype set: cuda, bfloat16)."""
    spec = QWEN2_5_VL_3B
    tiny.build_random_qwen2_5_vl(folder, vision=spec["vision"], text=spec["text"], patch=spec["patch"],
                                 merge=spec["merge"], min_pixels=spec["min_pixels"], max_pixels=spec["max_pixels"],
                                 mrope_section=spec["mrope_section"])


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
