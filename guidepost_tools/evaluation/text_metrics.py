"""BLEU, ROUGE and METEOR of answers against references, on language-aware tokens."""
from __future__ import annotations

import re
import warnings
from functools import cache

import numpy as np
from nltk.tokenize import TreebankWordTokenizer
from nltk.translate.bleu_score import corpus_bleu
from nltk.translate.meteor_score import meteor_score
from rouge_score.rouge_scorer import RougeScorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
# Kiwi's punctuation and symbol tags (SL letters, SH hanja and SN numbers are words and stay).
_KO_PUNCTUATION = {"SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SW"}
_WORD = re.compile(r"\w")

TOKENIZATION = {
    "en": "lower-cased Penn Treebank words (nltk TreebankWordTokenizer), punctuation dropped",
    "ko": "Korean morphemes from the Kiwi analyser (kiwipiepy), e.g. 자동차가 → 자동차 + 가, punctuation dropped; "
          "Korean attaches particles and endings to words, so space-separated words would rarely match",
}


def tokenize(text: str, lang: str = "en") -> list[str]:
    """Words (English and other languages) or morphemes (Korean) of one text, lower-cased, no punctuation."""
    if lang == "ko":
        return [token.form.lower() for token in _kiwi().tokenize(text) if token.tag not in _KO_PUNCTUATION]
    return [token for token in TreebankWordTokenizer().tokenize(text.lower()) if _WORD.search(token)]


@cache
def _kiwi():
    from kiwipiepy import Kiwi  # loads a ~30 MB model: only when Korean text is scored

    return Kiwi()


class _Tokenizer:
    """rouge-score's tokenizer interface over tokenize(); its own deletes every non-ASCII character."""

    def __init__(self, lang: str):
        self.lang = lang

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.lang)


@cache
def _rouge(lang: str) -> RougeScorer:
    return RougeScorer(list(ROUGE_TYPES), tokenizer=_Tokenizer(lang))


@cache
def wordnet_status() -> tuple[object | None, str]:
    """nltk's WordNet if its data is installed, else None; with a sentence saying which METEOR this is."""
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
        return wordnet, "exact, Porter-stem and WordNet-synonym matching"
    except LookupError:
        return None, ("exact and Porter-stem matching only: WordNet data is not installed, so synonym matching "
                      "is OFF and scores can be lower than METEOR with synonyms "
                      "(install it with python -m nltk.downloader wordnet)")


class _NoSynonyms:
    """Stands in for WordNet when its data is absent: every word has no synonyms."""

    @staticmethod
    def synsets(word):
        return []


def sample_scores(output: str, references: list[str], lang: str) -> dict:
    """ROUGE (best reference) and METEOR of one answer."""
    rouge = _rouge(lang).score_multi(references, output)
    wordnet, _ = wordnet_status()
    meteor = meteor_score([tokenize(r, lang) for r in references], tokenize(output, lang),
                          wordnet=wordnet or _NoSynonyms())
    return {**{name: {"precision": s.precision, "recall": s.recall, "f1": s.fmeasure} for name, s in rouge.items()},
            "meteor": meteor}


def corpus_scores(items: list[tuple[str, list[str], str]]) -> dict:
    """Corpus BLEU-1..4 and mean ROUGE/METEOR over (output, references, lang) items."""
    hypotheses = [tokenize(output, lang) for output, _, lang in items]
    references = [[tokenize(reference, lang) for reference in refs] for _, refs, lang in items]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns (and returns 0) when an n-gram order has no match at all
        bleu = {f"bleu{n}": float(corpus_bleu(references, hypotheses, weights=(1 / n,) * n)) for n in range(1, 5)}
    per_sample = [sample_scores(output, refs, lang) for output, refs, lang in items]
    rouge = {name: {part: float(np.mean([s[name][part] for s in per_sample]))
                    for part in ("precision", "recall", "f1")} for name in ROUGE_TYPES}
    wordnet, meteor_matching = wordnet_status()
    languages = sorted({lang for _, _, lang in items})
    return {
        "evaluated": len(items),
        "tokenization": {lang: TOKENIZATION.get(lang, TOKENIZATION["en"]) for lang in languages},
        "bleu": {**bleu, "note": "corpus BLEU (cumulative n-gram weights, no smoothing), 0..1"},
        "rouge": {**rouge, "note": "mean over samples of the best-matching reference"},
        "meteor": {"score": float(np.mean([s["meteor"] for s in per_sample])),
                   "synonyms": wordnet is not None, "matching": meteor_matching},
    }
