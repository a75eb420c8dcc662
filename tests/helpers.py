"""Small helpers shared by the tests."""
from __future__ import annotations

import io

import torch
from PIL import Image

from guidepost.presets import VLMSpec
from guidepost.vlm.base import VLM, Prepared


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


class _WordProcessor:
    """Decodes a ScriptedVLM's token ids: token i is word i of the answer."""

    def __init__(self, vlm):
        self.vlm = vlm

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(self.vlm.words[int(i)] for i in ids)


class FakeVLM(VLM):
    """A scripted VLM on the real VLM base (model lock, deadline, stop hook, streaming thread): each token is one word
    of answer(); subclasses change answer() (or make it raise), or wait in before_token() to hold the model."""

    name = "fake"

    def __init__(self):
        super().__init__(model=None, processor=_WordProcessor(self), spec=VLMSpec(id=self.name), name=self.name)
        self.words: list[str] = []

    def answer(self, inputs) -> str:
        return "A clear path ahead."

    def before_token(self, index: int, stopping) -> None:
        """Called before each token is produced (the generation thread); tests block here to hold the model."""

    def preprocess(self, images, prompt):
        return Prepared(images, prompt, {"input_ids": torch.zeros(1, 3, dtype=torch.long), "images": images,
                                         "prompt": prompt})

    def forward(self, inputs, *, max_new_tokens, stopping, streamer=None):
        self.words = self.answer(inputs).split()
        streamer.put(inputs["input_ids"])  # the prompt, as generate() does first
        ids = torch.zeros(1, 1, dtype=torch.long)
        request = stopping.generations[0].stopping  # one request at a time here: its deadline and stop hook
        for index in range(min(len(self.words), max_new_tokens)):
            self.before_token(index, request)
            streamer.put(torch.tensor([index]))
            if stopping(ids, None).all():
                break
        streamer.end()


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


def metric_samples(text: str) -> dict[tuple, float]:
    """Every sample of a /metrics text as {(name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metric_total(samples: dict, name: str, **labels) -> float:
    """The sum over every series of `name` whose labels include `labels` (every worker's, under gunicorn)."""
    return sum(value for (sample, labels_), value in samples.items()
               if sample == name and labels.items() <= dict(labels_).items())


def sse_events(chunks) -> list[tuple[str, object]]:
    """Server-Sent Events from text chunks: (event name, parsed JSON data), and ("comment", text) for comments."""
    import json

    events, block = [], ""
    for chunk in chunks:
        block += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in block:
            raw, block = block.split("\n\n", 1)
            lines = raw.split("\n")
            if all(line.startswith(":") for line in lines):
                events.append(("comment", raw[1:].strip()))
                continue
            fields = dict(line.split(": ", 1) for line in lines)
            events.append((fields["event"], json.loads(fields["data"])))
    return events
