"""Model text → speakable text: no markup, tokens or emojis, cut at a sentence under a word cap."""
from __future__ import annotations

import re
import unicodedata

import emoji

# <end_of_utterance>, <|im_end|>, </s>; a chat-turn opener takes its role word with it.
_SPECIAL_TOKEN = re.compile(r"<\|im_start\|>\s*\w*|<\|?[^<>\s]{1,40}\|?>")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")                  # [text](url) → text
_MD_MARKUP = re.compile(r"(\*\*|__|\*|`+|~~)")
_BULLET = re.compile(r"^\s*(?:[-*+•·]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s*(?:#{1,6}|>)\s+")
_URL = re.compile(r"https?://\S+")
_SPOKEN_SYMBOLS = "°℃℉"  # symbols a TTS engine reads aloud ("20 degrees")
_SENTENCE_END = re.compile(r"(?<=[.!?。？！])\s+")


def _speakable_char(ch: str) -> bool:
    # What emoji.replace_emoji leaves: symbols (So, e.g. U+FFFD from broken bytes), format and control chars.
    category = unicodedata.category(ch)
    if category in ("So", "Cs", "Co", "Cn", "Cf"):
        return ch in _SPOKEN_SYMBOLS

    return category != "Cc" or ch in "\n\t"


def clean_for_speech(text: str, max_words: int) -> str:
    """Strip markup and symbols, join lines into sentences and keep whole sentences within max_words."""
    text = _SPECIAL_TOKEN.sub(" ", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = emoji.replace_emoji(text, replace="")
    text = "".join(ch for ch in text if _speakable_char(ch))
    text = _join_lines(text)
    text = _MD_MARKUP.sub("", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([.,!?;:])", r"\1", text)
    text = re.sub(r"([.!?])\1+", r"\1", text)
    return _cap_words(text, max_words)


def split_sentences(text: str) -> list[str]:
    """Sentences of cleaned text, split after . ! ? (and their CJK forms) followed by a space."""
    return [sentence for sentence in _SENTENCE_END.split(text) if sentence]


def complete_sentences(raw: str, max_words: int) -> tuple[list[str], bool]:
    """The speakable sentences of a text still being generated: all but the last (which may grow), within
    max_words; and whether the cap was reached (no later sentence can be spoken)."""
    complete = split_sentences(clean_for_speech(raw, max_words=2**31))[:-1]
    kept, count = [], 0
    for sentence in complete:
        count += len(sentence.split())
        if count > max_words:
            return kept, True
        kept.append(sentence)
    return kept, count >= max_words


def _join_lines(text: str) -> str:
    # List items and headings become sentences of their own; a sentence wrapped over lines stays one.
    lines = []
    for raw in text.splitlines():
        is_item = bool(_BULLET.match(raw) or _HEADING.match(raw))
        line = _HEADING.sub("", _BULLET.sub("", raw)).strip()
        if line:
            lines.append((line, is_item))
    joined = []
    for i, (line, is_item) in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else None
        ends_sentence = following is None or is_item or following[1] or not following[0][0].islower()
        if ends_sentence and line[-1] not in ".!?。？！,;:":
            line += "."
        joined.append(line)
    return " ".join(joined)


def _cap_words(text: str, max_words: int) -> str:
    sentences = split_sentences(text)
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
