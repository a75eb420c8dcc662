"""Small helpers shared by the tests."""
from __future__ import annotations

import io

from PIL import Image


def encode(image: Image.Image, fmt: str = "JPEG", **save_args) -> bytes:
    """Serialize a PIL image to bytes in the given format."""
    buf = io.BytesIO()
    image.save(buf, fmt, **save_args)
    return buf.getvalue()


def started_app(config: dict):
    """create_app(config), then start loading as GUIDEPOST_LOAD (config's "load") says, as wsgi.py does."""
    from guidepost import create_app

    app = create_app(config)
    app.config["TESTING"] = True
    app.extensions["guidepost"].start()
    return app


class FlaskCli:
    """`flask <args>` against an app, with commands found as the flask CLI finds them (entry points included)."""

    def __init__(self, app):
        from flask.cli import FlaskGroup

        self.runner, self.group = app.test_cli_runner(), FlaskGroup(create_app=lambda: app)

    def invoke(self, args):
        return self.runner.invoke(self.group, args)


class FakeVLM:
    """A stand-in VLM with the real interface; subclasses say what answer() returns (or raises)."""

    name = "fake"

    def preprocess(self, images, prompt):
        return {"images": images, "prompt": prompt}

    def generate(self, inputs, *, deadline, max_new_tokens=None, should_stop=None):
        return self.answer(inputs)

    def answer(self, inputs) -> str:
        return "A clear path ahead."


def vlm_answer(vlm, images, prompt: str, max_new_tokens: int = 16, timeout_s: float = 60) -> str:
    """A VLM's greedy answer to images + prompt: preprocess, then generate under a deadline."""
    import time

    return vlm.generate(vlm.preprocess(images, prompt), deadline=time.monotonic() + timeout_s,
                        max_new_tokens=max_new_tokens)


def presets_dir(folder, **presets: str):
    """A presets folder holding the shipped vocabulary (unless given) and the given preset YAML texts."""
    from guidepost.config import PROJECT_ROOT

    folder.mkdir(parents=True, exist_ok=True)
    files = {"vocabulary": (PROJECT_ROOT / "models" / "vocabulary.yaml").read_text(), **presets}
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder
