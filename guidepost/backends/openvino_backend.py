"""The OpenVINO backend: both models exported once to IR (optimum-intel, openvino.convert_model) and compiled."""
from __future__ import annotations

import torch

from ..detector.openvino_clip import load_openvino_detector
from ..ir_cache import openvino_properties
from ..vlm.openvino_vlm import OpenVINOVLM, UnsupportedFamily
from .base import Backend


class OpenVINOBackend(Backend):
    """CLIP towers and the VLM as OpenVINO IR on the preset's OpenVINO device, weights as the preset says."""

    name = "openvino"

    def __init__(self, deployment):
        super().__init__(deployment)
        self.spec = deployment.openvino
        self.properties = openvino_properties(self.spec.hint, self.spec.threads, self.spec.device, self.spec.config,
                                              self.cache)

    def load_detector(self, spec, source, vocabulary):
        """The image tower compiled now, the text tower when the vocabulary needs embedding."""
        return load_openvino_detector(spec, source, vocabulary, self.spec, self.properties, self.cache)

    def load_vlm(self, spec, source):
        """OVModelForVisualCausalLM from the exported IR (the adapter merged before the export)."""
        return OpenVINOVLM.load(spec, source, self.spec, self.properties, self.cache, self.deployment.adapter)

    def describe(self) -> dict:
        """OpenVINO device and weight format, the torch threads preprocessing uses, the OpenVINO settings, the adapter."""
        return {"device": self.spec.device, "dtype": self.spec.weights, "torch_threads": torch.get_num_threads(),
                "openvino": self.spec.model_dump(), "adapter": self.adapter_info()}

    def load_hint(self, what, source, exc):
        """An unsupported model family is its own answer; anything else gets the download hint."""
        if isinstance(exc, UnsupportedFamily):
            return f"could not load the {what} '{source}': {exc}"
        return super().load_hint(what, source, exc)
