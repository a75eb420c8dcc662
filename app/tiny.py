"""Random-weight models built locally: tiny ones for tests and the offline `tiny` preset, real sizes for bench/."""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

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


TINY_MODELS = ("tiny-clip", "tiny-llava", "tiny-idefics3")


def ensure_built(kind: str, cache_dir: Path) -> Path:
    """Return the folder of tiny model `kind` (tiny-clip, tiny-llava, tiny-idefics3), building it once if absent."""
    builders = {"tiny-clip": build_tiny_clip, "tiny-llava": build_tiny_llava, "tiny-idefics3": build_tiny_idefics3}
    if kind not in builders:
        raise ValueError(f"unknown tiny model '{kind}'; known: {sorted(builders)}")
    target = Path(cache_dir) / "tiny" / kind.removeprefix("tiny-")
    if (target / "COMPLETE").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: two workers starting at once never see half a model.
    staging = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=target.parent))
    try:
        log.info("building tiny %s model in %s", kind, target)
        builders[kind](staging)
        (staging / "COMPLETE").write_text("built by app.tiny\n")
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "COMPLETE").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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


def _byte_level_tokenizer(extra_specials: tuple[str, ...] = ()):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<image>", *extra_specials]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(specials + alphabet)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
        additional_special_tokens=list(extra_specials),
    )


def _llama_config(tokenizer, **overrides):
    from transformers import LlamaConfig

    # initializer_range=0.5: with the default 0.02 a random model repeats one token forever.
    values = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, initializer_range=0.5,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    return LlamaConfig(**{**values, **overrides})


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
        text_config=_llama_config(tokenizer, **text).to_dict(), scale_factor=scale,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), pad_token_id=tokenizer.pad_token_id)
    _save_random(Idefics3ForConditionalGeneration, config, tokenizer, processor, folder, seed)


def build_tiny_llava(folder: Path, seed: int = 0) -> None:
    """Write a random LLaVA (tiny Llama + tiny CLIP vision tower) with its processor."""
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)

    tokenizer = _byte_level_tokenizer()
    image_size, patch = 32, 8
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image_size},
                                           crop_size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=TINY_CHAT_TEMPLATE,
    )
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, patch_size=patch, projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=_llama_config(tokenizer),
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1, initializer_range=0.5)
    _save_random(LlavaForConditionalGeneration, config, tokenizer, processor, folder, seed)
