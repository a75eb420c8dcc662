"""`flask batch` and `flask evaluate` through Flask's CLI runner, with the tiny preset's real models."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from guidepost.config import PROJECT_ROOT
from tests.helpers import FlaskCli

EXAMPLE = PROJECT_ROOT / "tests" / "data" / "example"


@pytest.fixture
def runner(app):
    return FlaskCli(app)


def run_folder(output_dir: Path) -> Path:
    (folder,) = output_dir.glob("batch_*")
    return folder


def results(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def test_batch_then_evaluate_the_example_dataset(runner, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(args=["batch", "--input", str(EXAMPLE / "data.jsonl"), "--output-dir", str(out),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    folder = run_folder(out)
    records = results(folder)
    lines = [json.loads(line) for line in (EXAMPLE / "data.jsonl").read_text().splitlines() if line.strip()]
    assert [r["sample_id"] for r in records] == [f"{n:06d}" for n in range(len(lines))]
    assert [r["input"] for r in records] == lines, "each input line is kept whole"
    assert all(r["error"] is None and r["output"]["request_id"] == f"batch-{r['sample_id']}" for r in records)
    assert records[1]["output"]["objects_source"] == "client" and records[1]["output"]["hazards"] == ["motorcycle"]
    reasoning = records[-1]
    assert len(reasoning["output_images"]) == 2 and reasoning["references"][0].startswith("The second picture")
    for record in records:
        for copy in record["output_images"]:
            assert (folder / copy).is_file()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["counts"]["succeeded"] == len(lines)
    assert summary["models"] == [{"vlm": "tiny-llava", "detector": "tiny-clip", "backend": "torch"}]
    assert summary["settings"]["preset"] == "tiny" and summary["timings_ms"]["p95"] > 0

    result = runner.invoke(args=["evaluate", "--results", str(folder / "results.jsonl")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("DANGER  recall"), "missed hazards come first"
    statistics = json.loads((folder / "statistics.json").read_text())
    assert list(statistics)[:2] == ["danger", "hazard_labels"]
    labelled = [r for r in records if r["hazards"] is not None]
    assert statistics["danger"]["evaluated"] == len(labelled)
    positives = sum(bool(r["hazards"]) for r in labelled)
    confusion = statistics["danger"]["confusion"]
    assert confusion["true_positive"] + confusion["false_negative"] == positives
    assert statistics["text"]["evaluated"] == len(lines) and set(statistics["text"]["tokenization"]) == {"en", "ko"}
    assert statistics["latency_ms"]["sla"]["threshold_ms"] == 1500
    rows = json.loads((folder / "evaluation_data.json").read_text())
    assert rows[0]["hazards_expected"] == ["motorcycle"] and rows[0]["output"] == records[0]["output"]["result"]
    for png in ("hazard_label_f1.png", "danger_confusion.png", "latency_histogram.png"):
        assert (folder / png).read_bytes()[:4] == b"\x89PNG"


def test_failing_samples_are_recorded_and_the_run_goes_on(runner, tmp_path, jpeg):
    (tmp_path / "good.jpg").write_bytes(jpeg)
    (tmp_path / "corrupt.jpg").write_bytes(b"this is not an image")
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join([
        json.dumps({"image": "good.jpg", "hazards": ["car"]}),
        json.dumps({"image": "missing.jpg", "hazards": ["car"]}),
        json.dumps({"image": "corrupt.jpg"}),
        "{broken",
        json.dumps({"image": "good.jpg", "text": "x" * 10_000}),
        json.dumps({"image": "good.jpg", "objects": "car"}),
    ]) + "\n")
    result = runner.invoke(args=["batch", "--input", str(data), "--output-dir", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 0, result.output
    records = results(run_folder(tmp_path / "out"))
    codes = [r["error"]["code"] if r["error"] else "ok" for r in records]
    assert codes == ["ok", "missing_image", "unsupported_image", "invalid_line", "invalid_field", "ok"]
    assert "missing.jpg" in records[1]["error"]["message"] and records[4]["error"]["status"] == 422
    summary = json.loads((run_folder(tmp_path / "out") / "summary.json").read_text())
    assert summary["counts"]["failed"] == 4 and summary["errors"]["missing_image"] == 1

    result = runner.invoke(args=["evaluate", "--results", str(run_folder(tmp_path / "out") / "results.jsonl")])
    assert result.exit_code == 0, result.output
    assert "(1 of them with expected hazards)" in result.output, "a failed hazard sample is called out"


def test_resume_finishes_a_cut_run_without_duplicates(runner, tmp_path):
    out = tmp_path / "out"
    args = ["batch", "--input", str(EXAMPLE / "data.jsonl"), "--output-dir", str(out), "--no-progress",
            "--start-idx", "2", "--end-idx", "8"]
    assert runner.invoke(args=args).exit_code == 0
    folder = run_folder(out)
    kept = (folder / "results.jsonl").read_text().splitlines()[:2]
    (folder / "results.jsonl").write_text("\n".join(kept) + "\n" + kept[0][:40])  # two whole lines and a torn one

    result = runner.invoke(args=["batch", "--resume", str(folder), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(r["sample_id"] for r in results(folder)) == [f"{n:06d}" for n in range(2, 8)]
    summary = json.loads((folder / "summary.json").read_text())
    assert [run["answered"] for run in summary["runs"]] == [6, 4]

    result = runner.invoke(args=["batch", "--resume", str(folder), "--end-idx", "9"])
    assert result.exit_code != 0 and "differs from the run being resumed" in result.output


@pytest.mark.parametrize("args, message", [
    (["batch"], "give --input"),
    (["batch", "--input", "{data}", "--preset", "no-such-preset"], "no-such-preset"),
    (["batch", "--input", "{data}", "--start-idx", "5", "--end-idx", "5"], "greater than --start-idx"),
    (["batch", "--resume", "{tmp}"], "not a batch run folder"),
    (["evaluate", "--results", "{empty}"], "has no results"),
])
def test_usage_errors_say_what_to_do(runner, tmp_path, args, message):
    (tmp_path / "empty.jsonl").write_text("")
    values = {"data": str(EXAMPLE / "data.jsonl"), "tmp": str(tmp_path), "empty": str(tmp_path / "empty.jsonl")}
    result = runner.invoke(args=[arg.format(**values) for arg in args])
    assert result.exit_code != 0 and message in result.output
    assert not list(tmp_path.glob("**/batch_*")), "no run folder is left behind by a usage error"


def test_help_explains_every_option(runner):
    for command in ("batch", "evaluate"):
        result = runner.invoke(args=[command, "--help"])
        options = [line.split()[0] for line in result.output.splitlines() if line.strip().startswith("--")]
        assert options and all(len(line.split()) > 2 for line in result.output.splitlines()
                                if line.strip().startswith("--") and "--help" not in line)
