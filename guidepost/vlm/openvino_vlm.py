"""The VLM on OpenVINO through optimum-intel: exported once with its processor, then used like the torch one."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..adapters import Adapter, save_merged
from ..ir_cache import INT4_GROUP_SIZE, compiling, ensure_exported, export_identity, ir_folder, is_current
from ..presets import OpenVINOSpec, VLMSpec
from .base import VLM
from .openvino_families import adapt_for_family, cap_lifted, lifted_export_caps

log = logging.getLogger(__name__)


class UnsupportedFamily(ValueError):
    """optimum-intel cannot export this model family with the installed transformers."""


def exportable_families() -> dict[str, str]:
    """VLM families (model_type) optimum-intel knows, each mapped to '' when it exports here or the reason not.

    A family whose cap this project lifted after checking it (openvino_families.LIFTED_CAPS: idefics3) exports.
    """
    import transformers
    from optimum.exporters.tasks import TasksManager
    from optimum.intel.openvino.modeling_visual_language import MODEL_TYPE_TO_CLS_MAPPING
    from packaging.version import Version

    installed = Version(transformers.__version__)
    families = {}
    for family in MODEL_TYPE_TO_CLS_MAPPING:
        try:
            constructor = TasksManager.get_exporter_config_constructor(
                exporter="openvino", model_type=family, task="image-text-to-text", library_name="transformers")
        except (KeyError, ValueError):
            families[family] = "no export configuration"
            continue
        config = getattr(constructor, "func", constructor)
        low, high = getattr(config, "MIN_TRANSFORMERS_VERSION", None), getattr(config, "MAX_TRANSFORMERS_VERSION", None)
        if high and installed > Version(str(high)) and cap_lifted(family, high, installed):
            families[family] = ""
        elif (low and installed < Version(str(low))) or (high and installed > Version(str(high))):
            families[family] = f"needs transformers {low or ''}..{high or ''}"
        else:
            families[family] = ""
    return families


def check_family(model_ref: str, spec: VLMSpec, cache_dir: Path) -> str:
    """The model's family (config.json model_type), or UnsupportedFamily naming it and the supported ones."""
    from importlib import metadata

    import transformers
    from transformers import AutoConfig

    family = AutoConfig.from_pretrained(model_ref, revision=spec.revision, cache_dir=str(cache_dir / "hf")).model_type
    families = exportable_families()
    if families.get(family) == "":
        return family
    supported = sorted(name for name, reason in families.items() if not reason)
    why = families.get(family) or "not a visual language model optimum-intel knows"
    raise UnsupportedFamily(
        f"the OpenVINO backend cannot run the '{family}' model family: optimum-intel "
        f"{metadata.version('optimum-intel')} with transformers {transformers.__version__} says: {why}. "
        f"Families it exports here: {', '.join(supported)}. Use backend: torch for this preset "
        f"(GUIDEPOST_BACKEND=torch), or a model of a supported family.")


def weight_compression(weights: str):
    """optimum-intel's weight compression for int8/int4 (None for fp32/fp16)."""
    from optimum.intel import OVWeightQuantizationConfig

    if weights == "int8":
        return OVWeightQuantizationConfig(bits=8)
    if weights == "int4":
        # "adjust" picks a smaller group for layers whose input size does not divide by 128 (tiny models).
        return OVWeightQuantizationConfig(bits=4, group_size=INT4_GROUP_SIZE, ratio=1.0, group_size_fallback="adjust")
    return None


def export_vlm(spec: VLMSpec, model_ref: str, weights: str, cache_dir: Path,
               adapter: Adapter | None = None) -> tuple[Path, bool]:
    """Export the VLM (with any adapter merged) and its processor to model_cache/openvino/ once; (folder, exported_now)."""
    folder = ir_folder(cache_dir, spec.id, spec.revision, weights, adapter.sha256 if adapter else None)
    identity = export_identity(model_ref, spec.revision, weights)
    if adapter is not None:  # a retrained adapter (new hash) is exported again, never served from a stale IR
        identity["adapter"] = {"name": adapter.name, "sha256": adapter.sha256}
    if not is_current(folder, identity):
        check_family(model_ref, spec, cache_dir)  # reads the model's config: only when there is no IR yet
    what = f"VLM {spec.id}" + (f" + adapter {adapter.name}" if adapter else "") + f" ({weights})"
    return ensure_exported(folder, identity,
                           lambda target: _export(spec, model_ref, weights, cache_dir, target, adapter), what)


def _export(spec: VLMSpec, model_ref: str, weights: str, cache_dir: Path, target: Path,
            adapter: Adapter | None) -> None:
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig, OVModelForVisualCausalLM
    from transformers import AutoProcessor

    merged = None
    if adapter is not None:
        # The adapter is merged in torch first, so the IR has plain weights and serves at the base model's speed.
        merged = target / "merged"
        save_merged(model_ref, spec, adapter, cache_dir, merged)
        model_ref = str(merged)
    compression = weight_compression(weights)
    # main_export (what optimum-cli runs) writes the IR with the processor, tokenizer and chat template; it only
    # compresses weights by model size, so int8/int4 are applied afterwards by loading with a quantization config.
    raw = target / "uncompressed" if compression else target
    with lifted_export_caps():
        main_export(model_name_or_path=model_ref, output=raw, task="image-text-to-text", revision=spec.revision,
                    cache_dir=str(cache_dir / "hf"), ov_config=OVConfig(dtype="fp16" if weights == "fp16" else "fp32"))
    if merged is not None:
        shutil.rmtree(merged)
    if compression:
        model = OVModelForVisualCausalLM.from_pretrained(raw, quantization_config=compression, compile=False)
        model.save_pretrained(target)
        AutoProcessor.from_pretrained(raw).save_pretrained(target)  # save_pretrained does not write the processor
        del model
        shutil.rmtree(raw)


class OpenVINOVLM(VLM):
    """optimum-intel's OVModelForVisualCausalLM; inputs stay float32 on the host (OpenVINO converts them itself)."""

    @classmethod
    def load(cls, spec: VLMSpec, model_ref: str, ov_spec: OpenVINOSpec, properties: dict,
             cache_dir: Path, adapter: Adapter | None = None) -> "OpenVINOVLM":
        """Export once (or reuse the IR) and compile it on ov_spec.device."""
        from optimum.intel import OVModelForVisualCausalLM
        from transformers import AutoProcessor

        folder, _ = export_vlm(spec, model_ref, ov_spec.weights, cache_dir, adapter)
        processor = AutoProcessor.from_pretrained(folder, **spec.processor_kwargs)
        with compiling(folder):
            # compile_only: the parts are compiled straight from their files and no ov.Model is kept beside them,
            # so a compiled model imported from OpenVINO's cache does not hold the weights twice (240 MiB here).
            model = OVModelForVisualCausalLM.from_pretrained(folder, device=ov_spec.device, ov_config=properties,
                                                             compile_only=True)
        adapt_for_family(model)
        log.info("VLM %s on OpenVINO %s (%s) from %s", spec.id, ov_spec.device, ov_spec.weights, folder)
        return cls(model, processor, spec, spec.id)
