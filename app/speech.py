"""Model text → speakable text: no markup, tokens or emojis, cut at a sentence under a word cap."""
from __future__ import annotations

import re
import unicodedata

_SPECIAL_TOKEN = re.compile(r"<\|?[^<>\s]{1,40}\|?>")             # <end_of_utterance>, <|im_end|>, </s>
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")                  # [text](url) → text
_MD_MARKUP = re.compile(r"(\*\*|__|\*|`+|~~|^#{1,6}\s*|^>\s*)", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*+•·]|\d{1,3}[.)])\s+", re.MULTILINE)
_URL = re.compile(r"https?://\S+")
_SENTENCE_END = re.compile(r"(?<=[.!?。？！])\s+")


def _speakable_char(ch: str) -> bool:
    # Drop emojis and pictographs (So), joiners/variation selectors (Cf, Mn at U+FE0x) and control chars.
    category = unicodedata.category(ch)
    if category in ("So", "Cs", "Co", "Cn") or (category == "Cf" and ch not in "\u200b"):
        return False
    if category == "Cc" and ch not in "\n\t":
        return False
    return not ("\ufe00" <= ch <= "\ufe0f")


def clean_for_speech(text: str, max_words: int) -> str:
    """Strip markup and symbols, join lines into sentences and keep whole sentences within max_words."""
    text = _SPECIAL_TOKEN.sub(" ", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _BULLET.sub("", text)
    text = _MD_MARKUP.sub("", text)
    text = "".join(ch for ch in text if _speakable_char(ch))
    # A line break ends a sentence when the model wrote a list or a heading.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = " ".join(line if line[-1] in ".!?。？！,;:" else line + "." for line in lines)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([.,!?;:])", r"\1", text)
    text = re.sub(r"([.!?])\1+", r"\1", text)
    return _cap_words(text, max_words)


def _cap_words(text: str, max_words: int) -> str:
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    kept, count = [], 0
    for sentence in sentences:
        words = len(sentence.split())
        if count + words > max_words:
            break
        kept.append(sentence)
        count += words
    if kept:
        return " ".join(kept)
    if not sentences:
        return ""
    # The first sentence alone is too long: cut it at the cap and close it.
    cut = " ".join(sentences[0].split()[:max_words]).rstrip(",;:")
    return cut if cut[-1:] in ".!?" else cut + "."
