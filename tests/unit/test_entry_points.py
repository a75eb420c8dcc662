"""Every flask command the tools declare in pyproject.toml imports and is the click command of that name."""
from __future__ import annotations

import importlib
import tomllib

import click

from guidepost.config import PROJECT_ROOT


def test_flask_command_entry_points_resolve():
    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["flask.commands"]
    assert {"batch", "evaluate", "finetune"} <= set(declared)
    for name, target in declared.items():
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command) and command.name == name
    finetune = importlib.import_module("guidepost_tools.cli.finetune").finetune_command
    assert set(finetune.commands) == {"prepare", "split", "train"}
