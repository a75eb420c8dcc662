"""Text, hazard and latency metrics, checked against independent implementations and hand computation."""
from __future__ import annotations

import pytest
import sacrebleu

from guidepost_tools.evaluation import text_metrics
from guidepost_tools.evaluation.hazard_metrics import danger_scores, label_scores
from guidepost_tools.evaluation.latency import latency_stats
from guidepost_tools.evaluation.text_metrics import corpus_scores, sample_scores, tokenize

EN = [("A car is right in front of you and it is moving", ["Stop now a car is right in front of you"], "en"),
      ("The stairs go down to the street", ["Careful the stairs go down just ahead of you"], "en"),
      ("A cup of coffee sits on the table", ["A cup of coffee on a saucer on the table"], "en")]


def test_bleu_matches_sacrebleu_on_raw_text():
    # sacrebleu tokenizes the raw strings itself (13a, lower-cased): a wrong tokenization here cannot agree.
    ours = corpus_scores(EN)["bleu"]
    for n in (1, 2, 3, 4):
        bleu = sacrebleu.metrics.BLEU(lowercase=True, tokenize="13a", max_ngram_order=n)
        reference = bleu.corpus_score([h for h, _, _ in EN], [[r[0] for _, r, _ in EN]])
        assert ours[f"bleu{n}"] == pytest.approx(reference.score / 100, abs=1e-9)


def test_rouge_by_hand():
    scores = sample_scores("a car is right in front", ["a car is in front of you"], "en")
    # 5 shared unigrams; 6 in the answer, 7 in the reference.
    assert scores["rouge1"]["precision"] == pytest.approx(5 / 6)
    assert scores["rouge1"]["recall"] == pytest.approx(5 / 7)
    # shared bigrams: "a car", "car is", "in front" = 3 of 5 and of 6.
    assert scores["rouge2"]["precision"] == pytest.approx(3 / 5) and scores["rouge2"]["recall"] == pytest.approx(3 / 6)
    # longest common subsequence: a car is in front = 5.
    assert scores["rougeL"]["f1"] == pytest.approx(2 * (5 / 6) * (5 / 7) / (5 / 6 + 5 / 7))


def test_meteor_by_hand_without_synonyms(monkeypatch):
    monkeypatch.setattr(text_metrics, "wordnet_status", lambda: (None, "exact and Porter-stem matching only"))
    # 4 of 4 answer words match 4 of 5 reference words in 1 chunk.
    precision, recall = 1.0, 4 / 5
    fmean = precision * recall / (0.9 * precision + 0.1 * recall)
    penalty = 0.5 * (1 / 4) ** 3
    assert sample_scores("a car is ahead", ["a car is ahead now"], "en")["meteor"] == pytest.approx(fmean * (1 - penalty))


def test_meteor_says_when_synonym_matching_is_off():
    meteor = corpus_scores(EN)["meteor"]
    wordnet, _ = text_metrics.wordnet_status()
    assert meteor["synonyms"] is (wordnet is not None)
    if wordnet is None:
        assert "synonym matching is OFF" in meteor["matching"]


def test_korean_is_scored_on_morphemes():
    assert tokenize("주의하세요. 바로 앞에 오토바이가 있습니다.", "ko") == \
        ["주의", "하", "세요", "바로", "앞", "에", "오토바이", "가", "있", "습니다"]
    # Different particles and endings on the same nouns: space-separated words share nothing here, morphemes do.
    # 앞/에/오토바이/가/있/어요 vs 오토바이/는/앞/에/있/습니다: 4 shared of 6 on each side.
    scores = sample_scores("앞에 오토바이가 있어요", ["오토바이는 앞에 있습니다"], "ko")
    assert scores["rouge1"]["precision"] == pytest.approx(4 / 6) and scores["rouge1"]["recall"] == pytest.approx(4 / 6)
    # ROUGE-L: the longest common subsequence 앞 에 있 (or 오토바이 ... 있) is 3 morphemes long.
    assert scores["rougeL"]["precision"] == pytest.approx(3 / 6)
    assert corpus_scores([("앞에 오토바이", ["앞에 오토바이"], "ko")])["tokenization"]["ko"].startswith("Korean morphemes")


def test_danger_recall_and_missed_samples():
    scores = danger_scores(["a", "b", "c", "d", "e"], [True, True, True, False, False],
                           [True, False, True, True, False])
    assert scores["recall"] == pytest.approx(2 / 3) and scores["false_negative_rate"] == pytest.approx(1 / 3)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["false_positive_rate"] == pytest.approx(1 / 2)
    assert scores["missed_samples"] == ["b"]
    assert scores["confusion"] == {"true_positive": 2, "false_negative": 1, "false_positive": 1, "true_negative": 1}


def test_label_scores_by_hand():
    scores = label_scores([["car"], ["car", "stairs"], []], [["car"], ["stairs"], ["dog"]])
    assert scores["per_label"]["car"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert scores["per_label"]["dog"]["precision"] == 0.0 and scores["per_label"]["dog"]["support"] == 0
    # micro: tp=2 (car, stairs), fp=1 (dog), fn=1 (car)
    assert scores["micro"]["precision"] == pytest.approx(2 / 3) and scores["micro"]["recall"] == pytest.approx(2 / 3)
    assert scores["macro"]["f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert scores["weighted"]["recall"] == pytest.approx((0.5 * 2 + 1 * 1) / 3)


def test_latency_stats_and_sla_share():
    stats = latency_stats([{"generate": 100.0, "total": 1000.0}, {"generate": 300.0, "total": 2000.0},
                           {"total": 1500.0}], sla_ms=1500)
    assert stats["total"]["p50"] == 1500.0 and stats["total"]["max"] == 2000.0
    assert stats["generate"]["count"] == 2 and stats["generate"]["mean"] == 200.0
    assert stats["sla"]["share_within"] == pytest.approx(2 / 3)
