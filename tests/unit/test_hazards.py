"""The vocabulary file and the danger decision."""
from __future__ import annotations

from pathlib import Path

import pytest

from guidepost.config import PROJECT_ROOT
from guidepost.hazards import Detection, Vocabulary


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.load(PROJECT_ROOT / "models" / "vocabulary.yaml")


def test_shipped_vocabulary_covers_street_and_indoor(vocab):
    labels = {entry.label for entry in vocab.labels}
    assert {"car", "bicycle", "motorcycle", "bus", "stairs", "curb", "hole", "pole", "traffic light",
            "crosswalk", "door", "chair", "person", "dog"} <= labels
    assert len(labels) >= 60
    assert all(entry.name("ko") != entry.label for entry in vocab.labels), "every label has a Korean name"


@pytest.mark.parametrize("sent,canonical", [
    ("Automobile", "car"), ("motorbike", "motorcycle"), ("traffic_light", "traffic light"),
    ("TRAFFIC-LIGHT", "traffic light"), ("pothole", "hole"), ("  Car ", "car"),
    ("a car", "car"), ("the bus.", "bus"), ("ｃａｒ", "car"), ("자동차", "car"), ("Cars!", "car"),
])
def test_client_synonyms_normalise(vocab, sent, canonical):
    assert vocab.normalise([sent]) == [Detection(canonical, None, vocab.get(canonical))]
    assert vocab.normalise([sent])[0].entry.label == canonical, "the vocabulary entry travels with the label"


def test_unknown_and_duplicate_client_labels(vocab):
    result = vocab.normalise(["car", "automobile", "Spaceship", "dog", "<image>", "-", "{{x}}"])
    assert [d.label for d in result] == ["car", "spaceship", "dog", "image", "x"], "markup never reaches a prompt"
    assert [d.entry is None for d in result] == [False, True, False, True, True]


def seen(vocab, *pairs):
    """Detections as CLIP makes them: each label with its score and vocabulary entry."""
    return [Detection(label, score, vocab.get(label)) for label, score in pairs]


def test_danger_when_any_hazard_present(vocab):
    assert not vocab.assess(seen(vocab, ("chair", 0.9), ("cup", 0.5))).danger
    verdict = vocab.assess(seen(vocab, ("chair", 0.9), ("dog", 0.3)))
    assert verdict.danger and verdict.labels == ["dog"]


def test_hazards_ordered_by_severity_then_score(vocab):
    car, dog, curb = vocab.get("car"), vocab.get("dog"), vocab.get("curb")
    assert car.severity > dog.severity
    verdict = vocab.assess(seen(vocab, ("dog", 0.6), ("car", 0.2), ("curb", 0.1)))
    assert verdict.labels[0] == "car"
    assert set(verdict.labels) == {"car", "dog", "curb"}
    same = [d for d in vocab.labels if d.hazard and d.severity == car.severity and d.label != "car"][0]
    tied = vocab.assess(seen(vocab, ("car", 0.2), (same.label, 0.7)))
    assert tied.labels == [same.label, "car"], "equal severity: higher score first"


def test_unknown_labels_are_never_hazards(vocab):
    assert not vocab.assess(vocab.normalise(["spaceship"])).danger
    # A label that merely spells a hazard is no hazard without its vocabulary entry.
    assert not vocab.assess([Detection("car", 0.9, None)]).danger


def test_spoken_names_follow_language(vocab):
    car, spaceship = vocab.normalise(["automobile", "spaceship"])
    assert car.spoken("en") == "car"
    assert car.spoken("ko") == vocab.get("car").names["ko"]
    assert spaceship.spoken("ko") == "spaceship"


@pytest.mark.parametrize("text,reason", [
    ("labels:\n- {label: car, hazard: true, severity: 3, synonyms: [vehicle]}\n"
     "- {label: truck, hazard: true, severity: 3, synonyms: [vehicle]}\n", "vehicle"),
    ("labels:\n- {label: car, hazard: true, severity: 0}\n", "severity"),
    ("labels:\n- {label: car, hazard: true, severity: 3, synonyms: [3]}\n", "non-empty strings"),
    ("labels: []\n", "no labels"),
])
def test_bad_vocabulary_files_fail_with_the_reason(tmp_path: Path, text, reason):
    path = tmp_path / "vocabulary.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=reason):
        Vocabulary.load(path)
