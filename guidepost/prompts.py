"""Prompt templates: prompts/<task>/<lang>.yaml, each a set of Jinja2 templates."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import jinja2
import yaml

from .hazards import Detection

# Every language file of every task must define these templates.
REQUIRED = ("danger", "safe", "fallback_danger", "fallback_safe", "fallback_nothing", "where")
# ...and a task's own templates: `read` speaks a notice when a container code's check digit does not match.
TASK_REQUIRED = {"read": ("check_digit_mismatch",)}


# Plain-text chat formats (LLaVA-1.5, DeepSeek-VL) mark turns with "USER:" / "ASSISTANT:".
_ROLE_MARKER = re.compile(r"\b(?:system|user|assistant|human|gpt|model)\s*:", re.IGNORECASE)
_QUOTES = str.maketrans({c: "'" for c in '"“”„‟«»〝〞「」『』'})

# Client labels the vocabulary does not know reach a prompt only as quoted data: this many, this long, at most.
MAX_UNKNOWN_LABELS = 5
MAX_UNKNOWN_LABEL_CHARS = 32

# Values used to render every template once at load, so a broken template fails start-up, not requests.
_SAMPLE = {"main_hazard": "car", "hazards": ["car", "dog"], "objects": ["car", "dog", "tree"], "question": "what?",
           "direction": "left", "where": "on your left", "unknown": ["mailbox"], "code": "CSQU3054383"}


def sanitize_question(text: str | None, max_chars: int = 500) -> str:
    """Make user text safe to quote inside a prompt: one line; no chat tokens, role markers, quotes or braces."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)  # full-width quotes and letters become plain ones
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc", "Cs") or ch in "\n\t")
    text = re.sub(r"<[^>]{0,40}>", " ", text)  # chat/special tokens such as <image> or <|im_end|>
    text = _ROLE_MARKER.sub(" ", text)
    text = text.replace("{", "(").replace("}", ")").translate(_QUOTES)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:max_chars]


def template_values(detections: list[Detection], hazards: list[Detection], lang: str, question: str | None,
                    max_question_chars: int = 500) -> dict:
    """What a template may say: vocabulary names in the instructions; the question and unknown labels as data."""
    spoken_hazards = [hazard.spoken(lang) for hazard in hazards]
    return {"objects": [d.spoken(lang) for d in detections if d.entry is not None], "hazards": spoken_hazards,
            "main_hazard": spoken_hazards[0] if spoken_hazards else "",
            "question": sanitize_question(question, max_question_chars), "unknown": unknown_labels(detections)}


def unknown_labels(detections: list[Detection]) -> list[str]:
    """Client labels outside the vocabulary, made safe to quote (as a question is), short, and few."""
    labels: list[str] = []
    for detection in detections:
        label = sanitize_question(detection.label, MAX_UNKNOWN_LABEL_CHARS) if detection.entry is None else ""
        if label and label not in labels:
            labels.append(label)
    return labels[:MAX_UNKNOWN_LABELS]


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
            required = REQUIRED + TASK_REQUIRED.get(path.parent.name, ())
            missing = [name for name in required if name not in data]
            if missing:
                raise ValueError(f"{path}: missing templates {missing}; every language file of task "
                                 f"'{path.parent.name}' needs {list(required)}")
            compiled = {}
            for name, source in data.items():
                try:
                    compiled[name] = env.from_string(str(source).strip())
                    compiled[name].render(**_SAMPLE)
                except jinja2.TemplateError as exc:
                    raise ValueError(f"{path}: template '{name}' is broken: {exc}") from None
            templates[(path.parent.name, path.stem)] = compiled
        if not templates:
            raise ValueError(f"no prompt templates under {folder}; expected <task>/<lang>.yaml files")
        return cls(templates)

    def languages_of(self, task: str) -> list[str]:
        """The languages a task has templates for."""
        return sorted(lang for t, lang in self._templates if t == task)

    def has(self, task: str, lang: str) -> bool:
        """Whether a template set exists for this task and language."""
        return (task, lang) in self._templates

    def render(self, task: str, lang: str, name: str, **values) -> str:
        """Render one template; values are the detection facts and the sanitized question."""
        return self._templates[(task, lang)][name].render(**values).strip()
