"""Random-weight models built locally: tiny ones for tests and the offline `tiny` preset, real sizes for bench/."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from .files import build_once

log = logging.getLogger(__name__)

TINY_CLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
        # open_clip's own BPE vocabulary (49408 tokens) ships in the package: no download.
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": {"resize_mode": "squash"},
}

# Prompts always put the image before the text; newlines are written as {{ '\n' }}
# because Hugging Face chat templates strip the newline after a {% %} tag.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)


def ensure_built(kind: str, cache_dir: Path) -> Path:
    """Return the folder of tiny model `kind` (one of TINY_MODELS), building it once if absent."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown tiny model '{kind}'; known: {list(TINY_MODELS)}")
    target = Path(cache_dir) / "tiny" / kind.removeprefix("tiny-")

    def build(staging: Path) -> None:
        log.info("building tiny %s model in %s", kind, target)
        _BUILDERS[kind](staging)
        (staging / "COMPLETE").write_text("built by guidepost.tiny\n")

    build_once(target, build, lambda folder: (folder / "COMPLETE").exists())
    return target


def build_tiny_clip(folder: Path, seed: int = 0) -> None:
    """Write a random open_clip model that loads with `local-dir:<folder>`."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG["model_cfg"])
    (folder / "open_clip_config.json").write_text(json.dumps(TINY_CLIP_CONFIG, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))


def _byte_level_tokenizer(extra_specials: tuple[str, ...] = (), image_token: str = "<image>"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", image_token, *extra_specials]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(specials + alphabet)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        # Named and listed special tokens go in separate arguments: transformers 5 drops additional_special_tokens
        # when extra_special_tokens is given, and the listed tokens would then be split into bytes.
        model_specific_special_tokens={"image_token": image_token}, extra_special_tokens=list(extra_specials),
    )


def _text_config(tokenizer, config_class=None, **overrides):
    from transformers import LlamaConfig

    # initializer_range=0.5: with the default 0.02 a random model repeats one token forever.
    values = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, initializer_range=0.5,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    return (config_class or LlamaConfig)(**{**values, **overrides})


def _save_random(model_class, config, tokenizer, processor, folder: Path, seed: int) -> None:
    import torch
    from transformers import GenerationConfig

    torch.manual_seed(seed)
    model = model_class(config).eval()
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


# SmolVLM's own chat template (Idefics3 family), so the tiny model exercises the real prompt format.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>{{ '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_tiny_idefics3(folder: Path, seed: int = 0) -> None:
    """Write a tiny random Idefics3 (the SmolVLM family) with its real processor classes and chat template."""
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    build_random_idefics3(folder, vision=vision, text={}, image_size=32, patch=8, scale=2, seed=seed)


def build_random_idefics3(folder: Path, *, vision: dict, text: dict, image_size: int, patch: int, scale: int,
                          seed: int = 0) -> None:
    """Write a random Idefics3 of any size (tiny for tests, real sizes for benchmarks) with SmolVLM's processor."""
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor,
                              Idefics3Processor)

    grid = tuple(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7))
    tokenizer = _byte_level_tokenizer(("<fake_token_around_image>", "<global-img>", "<end_of_utterance>",
                                       "<|im_start|>", *grid))
    processor = Idefics3Processor(
        # SmolVLM: tiles of max_image_size; the whole image is first resized to at most 4 tiles a side.
        image_processor=Idefics3ImageProcessor(size={"longest_edge": 4 * image_size},
                                               max_image_size={"longest_edge": image_size}),
        tokenizer=tokenizer, image_seq_len=(image_size // patch) ** 2 // scale**2,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )
    config = Idefics3Config(
        vision_config={**vision, "image_size": image_size, "patch_size": patch},
        text_config=_text_config(tokenizer, **text).to_dict(), scale_factor=scale,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), pad_token_id=tokenizer.pad_token_id)
    _save_random(Idefics3ForConditionalGeneration, config, tokenizer, processor, folder, seed)


def build_tiny_llava(folder: Path, seed: int = 0) -> None:
    """Write a random LLaVA (tiny Llama + tiny CLIP vision tower) with its processor."""
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    build_random_llava(folder, vision=vision, text={}, image_size=32, patch=8, seed=seed)


def build_random_llava(folder: Path, *, vision: dict, text: dict, image_size: int, patch: int,
                       text_family: str = "llama", seed: int = 0) -> None:
    """Write a random LLaVA of any size (tiny for tests, real sizes for benchmarks): a CLIP vision tower and
    a Llama or Qwen2 text model."""
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor, Qwen2Config)

    tokenizer = _byte_level_tokenizer()
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image_size},
                                           crop_size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=TINY_CHAT_TEMPLATE,
    )
    vision_config = CLIPVisionConfig(**{"projection_dim": vision["hidden_size"], **vision}, image_size=image_size,
                                     patch_size=patch)
    text_class = {"llama": LlamaConfig, "qwen2": Qwen2Config}[text_family]
    # image_seq_length and pad_token_id as in llava-hf's configs: optimum-intel's LLaVA reads both.
    config = LlavaConfig(vision_config=vision_config, text_config=_text_config(tokenizer, text_class, **text),
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         image_seq_length=(image_size // patch) ** 2, pad_token_id=tokenizer.pad_token_id,
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         initializer_range=text.get("initializer_range", 0.5))
    _save_random(LlavaForConditionalGeneration, config, tokenizer, processor, folder, seed)


# DeepSeek-VL's own turn format without its system prompt; `<image_placeholder>` is its tokenizer's image_token
# and </s> stands for its end-of-sentence token.
DEEPSEEK_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image_placeholder>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '\\n\\n' }}{% else %}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_tiny_deepseek_vl_hybrid(folder: Path, seed: int = 0) -> None:
    """Write a tiny random DeepSeek-VL (SigLIP low-res + SAM high-res towers, Llama text) with its real processor."""
    from transformers import (DeepseekVLHybridConfig, DeepseekVLHybridForConditionalGeneration,
                              DeepseekVLHybridImageProcessor, DeepseekVLHybridProcessor)

    tokenizer = _byte_level_tokenizer(image_token="<image_placeholder>")
    image_size, patch, high_res_size = 32, 8, 64
    grid = image_size // patch
    processor = DeepseekVLHybridProcessor(
        image_processor=DeepseekVLHybridImageProcessor(size={"height": image_size, "width": image_size},
                                                       high_res_size={"height": high_res_size, "width": high_res_size}),
        # The SAM tower's output is resampled onto the SigLIP grid: one token per SigLIP patch.
        tokenizer=tokenizer, num_image_tokens=grid**2, chat_template=DEEPSEEK_VL_CHAT_TEMPLATE,
    )
    # gelu and no pooling head, as in deepseek-vl-7b-chat's SigLIP: the aligner reads every patch.
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": image_size, "patch_size": patch, "hidden_act": "gelu", "vision_use_head": False}
    # SAM: 4x4 patches in 2x2 windows, the second layer global (the model reads the global layer's hidden state).
    high_res = {"hidden_size": 32, "output_channels": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                "image_size": high_res_size, "patch_size": 16, "window_size": 2, "global_attn_indexes": [1],
                "num_pos_feats": 16}
    config = DeepseekVLHybridConfig(text_config=_text_config(tokenizer).to_dict(), vision_config=vision,
                                    high_res_vision_config=high_res, image_token_id=tokenizer.image_token_id)
    _save_random(DeepseekVLHybridForConditionalGeneration, config, tokenizer, processor, folder, seed)


# Qwen2.5-VL's own chat template, images only (its real one also places videos and numbers pictures).
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system{{ '\\n' }}You are a helpful assistant.<|im_end|>{{ '\\n' }}{% endif %}"
    "<|im_start|>{{ message['role'] }}{{ '\\n' }}{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant{{ '\\n' }}{% endif %}"
)


def build_tiny_qwen2_5_vl(folder: Path, seed: int = 0) -> None:
    """Write a tiny random Qwen2.5-VL (windowed ViT, M-RoPE Qwen2 text) with its real processor classes."""
    patch, merge = 8, 2
    # window_size = one merged token: the first layer attends within windows, the second globally.
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "window_size": patch * merge,
              "fullatt_block_indexes": [1]}
    # At most 4x4 patches (2x2 image tokens after the 2x2 merge), at least one merged token; M-RoPE splits each
    # head's 8 rotary frequencies between time, height and width.
    build_random_qwen2_5_vl(folder, vision=vision, text={}, patch=patch, merge=merge, min_pixels=(patch * merge) ** 2,
                            max_pixels=(2 * patch * merge) ** 2, mrope_section=[2, 3, 3], seed=seed)


def build_random_qwen2_5_vl(folder: Path, *, vision: dict, text: dict, patch: int, merge: int, min_pixels: int,
                            max_pixels: int, mrope_section: list[int], rope_theta: float = 1e6, seed: int = 0) -> None:
    """Write a random Qwen2.5-VL of any size (tiny for tests, real sizes for benchmarks) with its processor."""
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2_5_VLTextConfig, Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    tokenizer = _byte_level_tokenizer(("<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>",
                                       "<|im_end|>"), image_token="<|image_pad|>")
    pixels = {"patch_size": patch, "merge_size": merge, "min_pixels": min_pixels, "max_pixels": max_pixels}
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**pixels),
                                    video_processor=Qwen2VLVideoProcessor(**pixels), tokenizer=tokenizer,
                                    chat_template=QWEN2_5_VL_CHAT_TEMPLATE)
    tied = text.get("tie_word_embeddings", False)  # the model's own setting, not its text config's, in transformers 5
    text = _text_config(tokenizer, Qwen2_5_VLTextConfig, rope_parameters={
        "rope_type": "default", "rope_theta": rope_theta, "mrope_section": mrope_section}, **text)
    vision = {**vision, "patch_size": patch, "spatial_merge_size": merge, "out_hidden_size": text.hidden_size}
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(text_config=text.to_dict(), vision_config=vision, image_token_id=tokenizer.image_token_id,
                              video_token_id=ids("<|video_pad|>"), vision_start_token_id=ids("<|vision_start|>"),
                              vision_end_token_id=ids("<|vision_end|>"), tie_word_embeddings=tied)
    _save_random(Qwen2_5_VLForConditionalGeneration, config, tokenizer, processor, folder, seed)


_BUILDERS = {"tiny-clip": build_tiny_clip, "tiny-llava": build_tiny_llava, "tiny-idefics3": build_tiny_idefics3,
             "tiny-deepseek-vl-hybrid": build_tiny_deepseek_vl_hybrid, "tiny-qwen2.5-vl": build_tiny_qwen2_5_vl}
TINY_MODELS = tuple(_BUILDERS)
