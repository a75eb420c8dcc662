"""The server's own flask command, `flask export-openvino`; batch and evaluate come from guidepost_tools' entry points."""
from __future__ import annotations

import time

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .presets import WEIGHT_FORMATS


def register_commands(app: Flask) -> None:
    """Attach the server's commands (cheap to import: their work imports what it needs when run)."""
    app.cli.add_command(export_openvino_command)


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
    from .detector.openvino_clip import export_clip
    from .ir_cache import folder_size_mb
    from .sources import prepare_sources
    from .vlm.openvino_vlm import UnsupportedFamily, export_vlm

    ext = current_app.extensions["guidepost"]
    settings = ext.settings
    if preset and preset != settings.preset:
        from .deployment import resolve_deployment

        try:
            deployment = resolve_deployment(settings.model_copy(update={"preset": preset}))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--preset") from None
    else:
        deployment = ext.deployment
    weights = weights or deployment.openvino.weights
    cache = deployment.model_cache
    det, vlm = deployment.preset.detector, deployment.preset.vlm
    sources = prepare_sources(deployment.preset, cache)
    for what, export in (("detector", lambda: export_clip(det, sources.detector, weights, cache)),
                         ("VLM", lambda: export_vlm(vlm, sources.vlm, weights, cache, deployment.adapter))):
        started = time.perf_counter()
        try:
            folder, exported = export()
        except UnsupportedFamily as exc:
            raise click.ClickException(str(exc)) from None
        state = f"exported in {time.perf_counter() - started:.1f} s" if exported else "already exported"
        click.echo(f"{what}: {folder} ({state}, {folder_size_mb(folder):.0f} MB)")
