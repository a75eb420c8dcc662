"""The danger decision (recall first: a missed hazard is the worst error) and per-label hazard detection."""
from __future__ import annotations

from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer


def danger_scores(sample_ids: list[str], expected: list[bool], predicted: list[bool]) -> dict:
    """Recall, false-negative rate, precision and the confusion counts of the danger decision."""
    tn, fp, fn, tp = confusion_matrix(expected, predicted, labels=[False, True]).ravel().tolist()
    missed = [sid for sid, want, got in zip(sample_ids, expected, predicted) if want and not got]
    return {
        "evaluated": len(expected),
        "recall": _ratio(tp, tp + fn),
        "false_negative_rate": _ratio(fn, tp + fn),
        "precision": _ratio(tp, tp + fp),
        "false_positive_rate": _ratio(fp, fp + tn),
        "confusion": {"true_positive": tp, "false_negative": fn, "false_positive": fp, "true_negative": tn},
        "missed_samples": missed,
    }


def label_scores(expected: list[list[str]], predicted: list[list[str]]) -> dict:
    """Per-label precision/recall/F1/support over hazard label sets, with macro, micro and weighted averages."""
    labels = sorted({label for labels in expected + predicted for label in labels})
    if not labels:
        return {"labels": [], "per_label": {}, "note": "no hazards expected or predicted"}
    binarizer = MultiLabelBinarizer(classes=labels)
    y_true, y_pred = binarizer.fit_transform(expected), binarizer.transform(predicted)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    scores = {"labels": labels, "per_label": {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support)}}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        scores[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    return scores


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None
