"""The vocabulary (labels, synonyms, hazard flags) and the danger decision."""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Label:
    """One vocabulary entry."""

    label: str
    hazard: bool
    severity: int
    clip: str
    names: dict[str, str] = field(default_factory=dict)  # spoken name per language code
    synonyms: tuple[str, ...] = ()

    def name(self, lang: str) -> str:
        """The label as spoken in lang (English when no translation exists)."""
        return self.names.get(lang, self.label)


@dataclass(frozen=True)
class Detection:
    """A label found in the image (score from CLIP) or sent by the client (score None), with its vocabulary entry."""

    label: str
    score: float | None
    entry: Label | None = None  # None: a client label the vocabulary does not know
    direction: str | None = None  # left, ahead or right when the detector looked at crops; None for client labels

    @property
    def hazard(self) -> bool:
        """Whether the vocabulary flags this label as a hazard."""
        return self.entry is not None and self.entry.hazard

    def spoken(self, lang: str) -> str:
        """The label as spoken in lang; an unknown label is spoken as sent."""
        return self.entry.name(lang) if self.entry else self.label


@dataclass(frozen=True)
class Assessment:
    """The danger decision: hazards ordered most dangerous first."""

    danger: bool
    hazards: list[Detection]

    @property
    def labels(self) -> list[str]:
        """The hazards' canonical labels, most dangerous first."""
        return [hazard.label for hazard in self.hazards]


def _key(text: str) -> str:
    """Comparable form of a label: NFKC, casefolded, punctuation and separators folded, no leading article."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]|_", " ", text)  # keeps letters/digits of any script (Korean too)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"^(?:a|an|the) ", "", text)


class Vocabulary:
    """Labels loaded from models/vocabulary.yaml; resolves synonyms and judges danger."""

    def __init__(self, labels: list[Label], digest: str):
        self.labels = labels
        self.digest = digest  # changes whenever the file changes; keys the CLIP embedding cache
        self._by_key: dict[str, Label] = {}
        for entry in labels:
            for word in (entry.label, *entry.names.values(), *entry.synonyms):
                key = _key(word)
                if key in self._by_key and self._by_key[key] is not entry:
                    raise ValueError(f"vocabulary: '{word}' names both '{self._by_key[key].label}' and '{entry.label}'")
                self._by_key[key] = entry

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        """Read and validate a vocabulary YAML file."""
        raw = path.read_bytes()
        data = yaml.safe_load(raw) or {}
        labels = []
        for i, item in enumerate(data.get("labels") or []):
            try:
                severity = int(item.get("severity", 0))
                hazard = bool(item.get("hazard", False))
                if hazard != (severity > 0):
                    raise ValueError("hazards need severity 1..3 and non-hazards severity 0")
                names = {k: v for k, v in item.items() if len(k) == 2 and isinstance(v, str)}
                synonyms = tuple(item.get("synonyms") or ())
                if not all(isinstance(w, str) and _key(w) for w in (item["label"], *synonyms)):
                    raise ValueError("label and synonyms must be non-empty strings")
                labels.append(Label(label=item["label"], hazard=hazard, severity=severity,
                                    clip=item.get("clip") or item["label"], names=names, synonyms=synonyms))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"{path}: entry {i} ({item!r}) is invalid: {exc}") from None
        if not labels:
            raise ValueError(f"{path}: no labels; add entries under 'labels:'")
        return cls(labels, hashlib.sha256(raw).hexdigest()[:16])

    def get(self, label: str) -> Label | None:
        """The entry for a label or any of its synonyms (case and separators ignored)."""
        return self._by_key.get(_key(label))

    def normalise(self, objects: list[str]) -> list[Detection]:
        """Client labels → canonical labels in client order; duplicates dropped, unknown ones kept in key form."""
        seen, detections = set(), []
        for raw in objects:
            entry = self.get(raw)
            label = entry.label if entry else _key(raw)
            if label and label not in seen:
                seen.add(label)
                detections.append(Detection(label, None, entry))
        return detections

    @staticmethod
    def assess(detections: list[Detection]) -> Assessment:
        """Danger when any hazard label is present; hazards sorted by severity, then score."""
        found = sorted((-det.entry.severity, -(det.score if det.score is not None else 1.0), order, det)
                       for order, det in enumerate(detections) if det.hazard)
        return Assessment(danger=bool(found), hazards=[det for *_, det in found])
