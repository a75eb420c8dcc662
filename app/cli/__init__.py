"""flask commands: `flask --app wsgi <command> --help` explains each."""
from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    """Attach every Guidepost command to the app's CLI."""
    from .batch import batch_command
    from .evaluate import evaluate_command
    from .export_openvino import export_openvino_command

    for command in (batch_command, evaluate_command, export_openvino_command):
        app.cli.add_command(command)
