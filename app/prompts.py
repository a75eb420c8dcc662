"""Prompt templates: prompts/<task>/<lang>.yaml, each a set of Jinja2 templates."""
from __future__ import annotations

import re
from pathlib import Path

import jinja2
import yaml

# Every language file of every task must define these templates.
REQUIRED = ("danger", "safe", "fallback_danger", "fallback_safe", "fallback_nothing")


def sanitize_question(text: str | None, max_chars: int = 300) -> str:
    """Make user text safe to quote inside a prompt: one line, no markup or chat tokens, no quotes."""
    if not text:
        return ""
    text = re.sub(r"<[^>]{0,40}>", " ", text)        # chat/special tokens such as <image> or <|im_end|>
    text = text.replace("{", "(").replace("}", ")")  # never template syntax
    text = text.replace('"', "'").replace("“", "'").replace("”", "'")
    text = re.sub(r"\s+", " ", text).strip()
    return text[:max_chars]


class PromptBook:
    """All prompt templates, loaded and compiled once at start-up."""

    def __init__(self, templates: dict[tuple[str, str], dict[str, jinja2.Template]]):
        self._templates = templates
        self.tasks = sorted({task for task, _ in templates})
        self.languages = sorted({lang for _, lang in templates})

    @classmethod
    def load(cls, folder: Path) -> "PromptBook":
        """Compile every prompts/<task>/<lang>.yaml; fail with the file name when one is incomplete."""
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
        templates = {}
        for path in sorted(folder.glob("*/*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            missing = [name for name in REQUIRED if name not in data]
            if missing:
                raise ValueError(f"{path}: missing templates {missing}; every language file needs {list(REQUIRED)}")
            templates[(path.parent.name, path.stem)] = {k: env.from_string(str(v).strip()) for k, v in data.items()}
        if not templates:
            raise ValueError(f"no prompt templates under {folder}; expected <task>/<lang>.yaml files")
        return cls(templates)

    def has(self, task: str, lang: str) -> bool:
        """Whether a template set exists for this task and language."""
        return (task, lang) in self._templates

    def render(self, task: str, lang: str, name: str, **values) -> str:
        """Render one template; values are the detection facts and the sanitized question."""
        return self._templates[(task, lang)][name].render(**values).strip()
