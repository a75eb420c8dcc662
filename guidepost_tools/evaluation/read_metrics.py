"""`read` answers against their references: exact match, character error rate, container codes and check digits."""
from __future__ import annotations

import re
import unicodedata

import jiwer
import numpy as np

NORMALISATION = ("NFKC, case-folded, punctuation removed, whitespace collapsed: a spoken answer carries no case, "
                 "and speech cleaning ends sentences with a full stop")


def normalise(text: str | None) -> str:
    """The letters and digits of a text, case-folded, as words joined by single spaces."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    return " ".join(re.findall(r"\w+", text))


def score_row(output: str | None, references: list[str], expected_code: str | None, codes: list[dict]) -> dict:
    """One read answer: exact match, whether a reference appears in it, its CER, and its container codes."""
    answer, refs = normalise(output), [normalise(ref) for ref in references]
    read = [code["code"] for code in codes]
    return {"exact_match": answer in refs, "contains_reference": any(ref and ref in answer for ref in refs),
            "cer": float(jiwer.cer(refs[0], answer)) if refs and refs[0] else None,
            "codes_read": read,
            "code_correct": expected_code in read if expected_code else None,
            "codes_valid": [code["valid"] for code in codes]}


def read_scores(rows: list[dict]) -> dict | None:
    """Corpus scores over answered read rows (each with row["read"] from score_row); None when there are none."""
    scored = [row for row in rows if row.get("read")]
    if not scored:
        return None
    with_ref = [row for row in scored if row["references"] and normalise(row["references"][0])]
    with_code = [row for row in scored if row["code_expected"]]
    valid = [flag for row in scored for flag in row["read"]["codes_valid"]]
    return {
        "evaluated": len(scored),
        "normalisation": NORMALISATION,
        "exact_match": _mean([row["read"]["exact_match"] for row in with_ref]),
        "contains_reference": _mean([row["read"]["contains_reference"] for row in with_ref]),
        # Corpus CER (all edits over all reference characters), with jiwer's Levenshtein alignment.
        "cer": float(jiwer.cer([normalise(row["references"][0]) for row in with_ref],
                               [normalise(row["output"]) for row in with_ref])) if with_ref else None,
        "containers": {
            "labelled": len(with_code),
            "accuracy": _mean([row["read"]["code_correct"] for row in with_code]),
            "codes_read": len(valid),
            "check_digit_valid": _mean(valid),
            "note": "accuracy: share of lines with a labelled code whose answer has exactly that code; "
                    "check_digit_valid: share of all codes read whose check digit matches",
        },
    }


def _mean(values: list[bool]) -> float | None:
    return float(np.mean(values)) if values else None
