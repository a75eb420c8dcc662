"""`flask evaluate`: score a batch's results.jsonl (danger recall first, then labels, text, latency)."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ..batch.runner import ResultsLog


@click.command("evaluate")
@click.option("--results", "results_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="results.jsonl written by `flask batch`.")
@click.option("--compare", "compare_paths", nargs=2, default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="BASE TUNED",
              help="Two results.jsonl of the same dataset (e.g. base model, then with the adapter): writes "
                   "comparison.md, comparison.json and comparison.png (default: next to TUNED).")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where evaluation_data.json, statistics.json and the PNGs go (default: next to the results).")
@click.option("--sla-ms", type=click.FloatRange(min=1), default=1500, show_default=True,
              help="Latency threshold: the report gives the share of answers at or under it.")
@with_appcontext
def evaluate_command(results_path: Path | None, compare_paths, output_dir: Path | None, sla_ms: float):
    """Score a batch: danger recall and missed hazards, per-label hazard F1, BLEU/ROUGE/METEOR, read-task scores
    (exact match, character error rate, container codes and check digits), latency.

    Hazard metrics use samples whose input line has "hazards" (a list; [] means no hazard);
    text metrics use samples with references; read metrics use lines with "task": "read" (and their
    "container" labels). Writes evaluation_data.json (per sample), statistics.json and PNG plots,
    then prints a short summary. With --compare BASE TUNED, compares two runs instead.
    """
    if (results_path is None) == (compare_paths is None):
        raise click.UsageError("give --results FILE, or --compare BASE TUNED")
    if compare_paths:
        _compare(*compare_paths, output_dir, sla_ms)
        return
    # The metrics stack (nltk, rouge-score, scikit-learn, matplotlib) loads only when a report is made.
    from ..evaluation.report import evaluate_records, write_json, write_plots

    records = _records(results_path)
    output_dir = output_dir or results_path.parent
    output_dir.mkdir(parents=True, exist_ok=True)
    vocabulary = current_app.extensions["guidepost"].vocabulary
    rows, statistics = evaluate_records(records, vocabulary, sla_ms)
    write_json(output_dir / "evaluation_data.json", rows)
    write_json(output_dir / "statistics.json", statistics)
    plots = write_plots(rows, statistics, sla_ms, output_dir)
    for line in summary_lines(statistics):
        click.echo(line)
    click.echo(f"written: {', '.join(p.name for p in plots + [output_dir / 'statistics.json'])} in {output_dir}")


def _compare(base_path: Path, tuned_path: Path, output_dir: Path | None, sla_ms: float) -> None:
    from ..evaluation.compare import compare_runs, markdown, plot
    from ..evaluation.report import write_json

    try:
        comparison = compare_runs(_records(base_path), _records(tuned_path),
                                  current_app.extensions["guidepost"].vocabulary, sla_ms)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    output_dir = output_dir or tuned_path.parent
    output_dir.mkdir(parents=True, exist_ok=True)
    names = ("base", "tuned")
    write_json(output_dir / "comparison.json", {"base": str(base_path), "tuned": str(tuned_path), **comparison})
    table = markdown(comparison, *names)
    (output_dir / "comparison.md").write_text(table, encoding="utf-8")
    plot(comparison, output_dir / "comparison.png", *names)
    click.echo(table.split("\n\n| sample")[0])
    if comparison["only_in_one_run"]:
        click.echo(f"warning: {len(comparison['only_in_one_run'])} samples are in one run only and were left out")
    click.echo(f"written: comparison.md, comparison.json, comparison.png in {output_dir}")


def _records(path: Path) -> list[dict]:
    records = ResultsLog(path).read()  # read-only: a batch may still be appending to it
    if not records:
        raise click.ClickException(f"{path} has no results")
    return records


def summary_lines(statistics: dict) -> list[str]:
    """A few human-readable lines, the missed hazards first."""
    lines = []
    danger = statistics["danger"]
    if danger:
        confusion = danger["confusion"]
        positives = confusion["true_positive"] + confusion["false_negative"]
        lines.append(f"DANGER  recall {_pct(danger['recall'])} ({confusion['true_positive']}/{positives}), "
                     f"false-negative rate {_pct(danger['false_negative_rate'])}, "
                     f"precision {_pct(danger['precision'])}"
                     + (f" — MISSED: {', '.join(danger['missed_samples'])}" if danger["missed_samples"] else ""))
    else:
        lines.append("DANGER  no samples with hazard labels")
    samples = statistics["samples"]
    lines.append(f"samples {samples['answered']}/{samples['total']} answered, {samples['failed']} failed "
                 f"({samples['failed_with_expected_hazards']} of them with expected hazards), "
                 f"{samples['fallback']} fallback")
    labels = statistics["hazard_labels"]
    if labels and labels.get("macro"):
        lines.append(f"hazard labels  F1 macro {labels['macro']['f1']:.2f}, micro {labels['micro']['f1']:.2f}, "
                     f"weighted {labels['weighted']['f1']:.2f} over {len(labels['labels'])} labels")
    text = statistics["text"]
    if text:
        lines.append(f"text ({text['evaluated']})  BLEU-4 {text['bleu']['bleu4']:.3f}, "
                     f"ROUGE-L F1 {text['rouge']['rougeL']['f1']:.3f}, METEOR {text['meteor']['score']:.3f}"
                     + ("" if text["meteor"]["synonyms"] else " (METEOR without WordNet synonyms)"))
    read = statistics.get("read")
    if read:
        containers = read["containers"]
        lines.append(f"read ({read['evaluated']})  exact match {_pct(read['exact_match'])}, "
                     f"CER {_num(read['cer'])}, container codes correct {_pct(containers['accuracy'])} "
                     f"of {containers['labelled']} labelled, check digits valid {_pct(containers['check_digit_valid'])} "
                     f"of {containers['codes_read']} read")
    latency = statistics["latency_ms"]
    if latency:
        total, sla = latency["total"], latency["sla"]
        lines.append(f"latency  total p50 {total['p50']:.0f} ms, p95 {total['p95']:.0f} ms, "
                     f"{_pct(sla['share_within'])} within {sla['threshold_ms']:g} ms")
    for warning in statistics.get("warnings", []):
        lines.append(f"warning: {warning}")
    return lines


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
