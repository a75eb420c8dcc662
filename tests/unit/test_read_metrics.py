"""Read-task scores against hand-computed values, and the base-vs-tuned comparison."""
from __future__ import annotations

import pytest

from guidepost.config import PROJECT_ROOT
from guidepost.container_codes import find_codes
from guidepost.hazards import Vocabulary
from guidepost_tools.evaluation.compare import compare_runs, markdown
from guidepost_tools.evaluation.report import evaluate_records

LINES = [  # (reference, container label, what was spoken)
    ("CSQU 305438 3", ("CSQU", "305438", "3"), "CSQU 305438 3."),
    ("GATE 7", None, "GATE 1."),
    ("MSCU 663987 0", ("MSCU", "663987", "0"), "Caution: truck ahead. MSCU 663987 8"),
]


@pytest.fixture(scope="module")
def vocabulary():
    return Vocabulary.load(PROJECT_ROOT / "models" / "vocabulary.yaml")


def records(answers: list[str]) -> list[dict]:
    """results.jsonl records of a batch over LINES that spoke these answers."""
    out = []
    for n, ((reference, container, _), answer) in enumerate(zip(LINES, answers)):
        line = {"image": f"{n}.jpg", "task": "read", "reference": reference, "hazards": []}
        if container:
            line["container"] = dict(zip(("owner", "serial", "check_digit"), container))
        codes = [code.as_dict() for code in find_codes(answer)]
        out.append({"sample_id": f"{n:06d}", "input": line, "question": None, "lang": "en",
                    "references": [reference], "hazards": [], "error": None, "elapsed_ms": 10.0,
                    "output": {"result": answer, "danger": False, "hazards": [], "fallback": False,
                               "timings_ms": {"total": 9.0}, "codes": codes}})
    return out


def test_read_scores(vocabulary):
    rows, statistics = evaluate_records(records([spoken for *_, spoken in LINES]), vocabulary, 1500)
    read = statistics["read"]
    assert read["evaluated"] == 3
    assert read["exact_match"] == pytest.approx(1 / 3), "case, spacing and the full stop do not count"
    assert read["contains_reference"] == pytest.approx(1 / 3)
    # Edits over reference characters, normalised: 0 of 13, 1 of 6 (7 → 1), 21 of 13 (20 inserted, 0 → 8).
    assert read["cer"] == pytest.approx(22 / 32)
    assert [row["read"]["cer"] for row in rows] == pytest.approx([0, 1 / 6, 21 / 13])
    containers = read["containers"]
    assert (containers["labelled"], containers["accuracy"]) == (2, 0.5)
    assert (containers["codes_read"], containers["check_digit_valid"]) == (2, 0.5)
    assert rows[2]["code_expected"] == "MSCU6639870" and rows[2]["read"]["codes_read"] == ["MSCU6639878"]


def test_compare_says_which_run_is_better(vocabulary):
    base = records([spoken for *_, spoken in LINES])
    tuned = records(["CSQU 305438 3", "GATE 7", "MSCU 663987 0"])
    comparison = compare_runs(base, tuned, vocabulary, 1500)
    metrics = {m["metric"]: m for m in comparison["metrics"]}
    assert metrics["read: exact match"]["tuned"] == 1 and metrics["read: exact match"]["better"] == "tuned"
    assert metrics["read: character error rate"]["tuned"] == 0 and metrics["read: character error rate"]["better"] \
        == "tuned", "a lower error rate is better"
    assert metrics["container codes correct"]["change"] == pytest.approx(0.5)
    assert metrics["fallback share"]["better"] is None
    assert [s["tuned"]["codes_read"] for s in comparison["samples"]] == [["CSQU3054383"], [], ["MSCU6639870"]]
    table = markdown(comparison, "base", "tuned")
    assert "| read: exact match | 0.333 | 1.000 | +0.667 | tuned |" in table
    assert "| 000002 | read | MSCU 663987 0 | Caution: truck ahead. MSCU 663987 8 | MSCU 663987 0 |" in table


def test_compare_refuses_runs_of_different_datasets(vocabulary):
    base, tuned = records(["a", "b", "c"]), records(["a", "b", "c"])
    tuned[1]["input"]["reference"] = "GATE 8"
    with pytest.raises(ValueError, match="different input lines"):
        compare_runs(base, tuned, vocabulary, 1500)
