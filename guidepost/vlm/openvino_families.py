"""VLM families this project exports beyond optimum-intel's own transformers caps, and the run-time fix each needs."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from packaging.version import Version


@dataclass(frozen=True)
class LiftedCap:
    """optimum-intel caps a family's export at `cap`; this project checked it up to (not including) `below`."""

    cap: str
    checked_with: str
    below: str


# optimum-intel 2.2.0 caps Idefics3OpenVINOConfig (SmolVLM, the default preset) at transformers 4.57.6. Checked with
# transformers 5.5.4, optimum-intel 2.2.0, OpenVINO 2026.4.1 and nncf 3.4.0: the export runs, its fp32 IR is the same
# as one exported under 4.57.6, and with the vision position ids below, greedy tokens equal torch's for one and two
# images (tests/integration/test_openvino.py). The lift holds only while optimum-intel's cap is still that exact
# value (a later release speaks for itself) and transformers is below `below` (optimum-intel 2.2.0's own bound).
LIFTED_CAPS = {"idefics3": LiftedCap(cap="4.57.6", checked_with="5.5.4", below="5.6")}


def cap_lifted(family: str, cap, installed: Version) -> bool:
    """Whether this project lifts optimum-intel's cap `cap` on `family` for the installed transformers."""
    lift = LIFTED_CAPS.get(family)
    return lift is not None and str(cap) == lift.cap and installed < Version(lift.below)


@contextlib.contextmanager
def lifted_export_caps() -> Iterator[None]:
    """Export with optimum-intel's transformers cap lifted on the families in LIFTED_CAPS, then put the caps back."""
    from optimum.exporters.tasks import TasksManager

    saved = []
    for family, lift in LIFTED_CAPS.items():
        constructor = TasksManager.get_exporter_config_constructor(
            exporter="openvino", model_type=family, task="image-text-to-text", library_name="transformers")
        config = getattr(constructor, "func", constructor)
        if str(vars(config).get("MAX_TRANSFORMERS_VERSION")) == lift.cap:
            saved.append((config, config.MAX_TRANSFORMERS_VERSION))
            config.MAX_TRANSFORMERS_VERSION = None  # optimum's export skips the version check when it is None
    try:
        yield
    finally:
        for config, cap in saved:
            config.MAX_TRANSFORMERS_VERSION = cap


def adapt_for_family(model) -> None:
    """Apply what a family needs at run time to an OVModelForVisualCausalLM (in place); most need nothing."""
    if model.config.model_type == "idefics3":
        feed_transformers_position_ids(model)


def feed_transformers_position_ids(model) -> None:
    """Make an Idefics3 IR get the vision position ids that the installed transformers computes.

    optimum-intel 2.2.0 computes them in Python (they are an input of the vision IR) with transformers
    4.55-4.57's formula, a regression (transformers issue #41190, fixed by PR #41371) that moves all but one of
    SmolVLM's 1024 patches of a full 512 px tile to another position. transformers 5.x is back to the formula the
    model was trained with; the IR itself needs no re-export.
    """
    part = model.vision_embeddings
    original = part.forward
    probe = _PositionIdProbe(model.config.vision_config)

    def forward(pixel_values, **kwargs):
        pixels = torch.as_tensor(pixel_values)
        kwargs["patch_position_ids"] = probe.position_ids(pixels, torch.as_tensor(kwargs["patch_attention_mask"]))
        return original(pixel_values, **kwargs)

    part.forward = forward  # OVModelPart.__call__ calls self.forward


class _PositionIdProbe:
    """transformers' own Idefics3VisionEmbeddings.forward with its weights stubbed, so it returns the position ids."""

    def __init__(self, vision_config):
        self.patch_size = vision_config.patch_size
        self.num_patches_per_side = vision_config.image_size // vision_config.patch_size

    def patch_embedding(self, pixel_values: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = pixel_values.shape
        return pixel_values.new_zeros(batch, 1, height // self.patch_size, width // self.patch_size)

    def position_embedding(self, position_ids: torch.Tensor) -> torch.Tensor:
        return position_ids[..., None].to(torch.float64)  # ids below 2**53 survive the float sum exactly

    def position_ids(self, pixel_values: torch.Tensor, patch_attention_mask: torch.Tensor) -> torch.Tensor:
        from transformers.models.idefics3.modeling_idefics3 import Idefics3VisionEmbeddings

        summed = Idefics3VisionEmbeddings.forward(self, pixel_values, patch_attention_mask)  # zeros + ids
        return summed[..., 0].round().to(torch.int64)
