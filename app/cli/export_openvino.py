"""`flask export-openvino`: export a preset's models to OpenVINO IR ahead of time (a deploy or Docker build step)."""
from __future__ import annotations

import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ..ir_cache import folder_size_mb
from ..presets import WEIGHT_FORMATS, load_preset
from ..registry import model_refs


@click.command("export-openvino")
@click.option("--preset", default=None, help="Preset whose detector and VLM are exported (default: GUIDEPOST_PRESET).")
@click.option("--weights", type=click.Choice(WEIGHT_FORMATS), default=None,
              help="IR weight format (default: the preset's openvino.weights): fp32, fp16, "
                   "int8 or int4 (nncf weight compression).")
@with_appcontext
def export_openvino_command(preset: str, weights: str | None):
    """Export a preset's CLIP detector and VLM to OpenVINO IR under model_cache/openvino/.

    The server with GUIDEPOST_BACKEND=openvino (or backend: openvino in the preset) then loads
    the IR without exporting. An IR that is already there and current is kept.
    """
    from ..detector.openvino_clip import export_clip
    from ..vlm.openvino_vlm import UnsupportedFamily, export_vlm

    settings = current_app.config["GUIDEPOST"]
    try:
        spec = load_preset(settings.presets_dir, preset or settings.preset)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--preset") from None
    weights = weights or settings.openvino_weights or spec.openvino.weights
    cache = Path(settings.model_cache)
    det, vlm = spec.detector, spec.vlm
    det_ref, vlm_ref = model_refs(spec, cache)
    for what, export in (("detector", lambda: export_clip(det, det_ref, weights, cache)),
                         ("VLM", lambda: export_vlm(vlm, vlm_ref, weights, cache))):
        started = time.perf_counter()
        try:
            folder, exported = export()
        except UnsupportedFamily as exc:
            raise click.ClickException(str(exc)) from None
        state = f"exported in {time.perf_counter() - started:.1f} s" if exported else "already exported"
        click.echo(f"{what}: {folder} ({state}, {folder_size_mb(folder):.0f} MB)")
