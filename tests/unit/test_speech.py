"""Text-to-speech cleaning of model output."""
from __future__ import annotations

import pytest

from guidepost.speech import clean_for_speech


@pytest.mark.parametrize("raw,expected", [
    ("**Caution!** A car is *right* in front of you.", "Caution! A car is right in front of you."),
    ("# Scene\n- a bench\n- a tree", "Scene. a bench. a tree."),
    ("1. Stop now\n2) Step back", "Stop now. Step back."),
    ("Ahead is a park\n## Details\nA bench is on the left", "Ahead is a park. Details. A bench is on the left."),
    ("A path that\ncontinues straight.", "A path that continues straight."),
    ("A dog 🐕 is near 👍🏽 you.", "A dog is near you."),
    ("A door.<end_of_utterance>", "A door."),
    ("<|im_start|>assistant A chair.<|im_end|>", "A chair."),
    ("It is 20°C and sunny.", "It is 20°C and sunny."),
    ("Go   left\n\n\n  now.", "Go left now."),
    ("See [the map](https://x.y/z) and `code`.", "See the map and code."),
    ("Stop!!! Wait...", "Stop! Wait."),
    ("", ""),
    ("🚗 ✨", ""),
])
def test_markup_tokens_and_symbols_are_removed(raw, expected):
    assert clean_for_speech(raw, max_words=40) == expected


def test_cut_at_sentence_boundary_under_word_cap():
    raw = "A car is ahead. It is moving slowly toward you. There are trees on both sides of the street."
    assert clean_for_speech(raw, max_words=12) == "A car is ahead. It is moving slowly toward you."


def test_single_overlong_sentence_is_cut_and_closed():
    raw = "There is " + "a very long list of things " * 10 + "here"
    out = clean_for_speech(raw, max_words=8)
    assert out == "There is a very long list of things."


def test_korean_is_kept():
    assert clean_for_speech("**주의**: 앞에 자동차가 있습니다. 멈추세요!", max_words=40) == "주의: 앞에 자동차가 있습니다. 멈추세요!"
