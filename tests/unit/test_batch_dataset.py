"""Dataset lines → samples, and the crash-safe results log."""
from __future__ import annotations

import json

from guidepost_tools.batch.dataset import read_samples
from guidepost_tools.batch.runner import ResultsLog


def write_jsonl(path, *lines):
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_simple_lines_resolve_images_against_the_file_and_keep_labels(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl",
                       {"image": "img/a.jpg", "text": "What is ahead?", "objects": ["car"], "lang": "ko",
                        "reference": "A car.", "hazards": ["car"]},
                       "",
                       {"image": "/abs/b.jpg", "reference": ["one", "two"]})
    first, second = read_samples(data)
    assert first.images == [tmp_path / "img/a.jpg"] and second.images[0].as_posix() == "/abs/b.jpg"
    assert first.fields() == {"text": "What is ahead?", "objects": ["car"], "lang": "ko"}
    assert first.references == ["A car."] and first.hazards == ["car"]
    assert second.references == ["one", "two"] and second.hazards is None
    assert (first.sample_id, second.sample_id) == ("000000", "000001"), "blank lines do not count"


def test_multi_image_reasoning_lines_pass_images_in_placeholder_order(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", {
        "Question": "Compare <image_start>[problem_image_2]<image_end> with <image_start>[problem_image_1]<image_end>.",
        "problem_image_1": "one.png", "problem_image_2": "two.png",
        "Text Reasoning Trace": "Because.", "Final Answer": "The second."})
    (sample,) = read_samples(data)
    assert sample.images == [tmp_path / "two.png", tmp_path / "one.png"]
    assert sample.text == "Compare (image 1) with (image 2)."
    assert sample.references == ["The second.", "Because."]


def test_bad_lines_become_samples_with_errors(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", "{not json", "[1, 2]", {"text": "no image"},
                       {"Question": "<image_start>[problem_image_1]<image_end>"},
                       {"image": "a.jpg", "hazards": "car"}, {"image": "ok.jpg"})
    samples = read_samples(data)
    assert [s.error.code if s.error else None for s in samples] == ["invalid_line"] * 5 + [None]
    assert "problem_image_1" in str(samples[3].error) and "hazards" in str(samples[4].error)


def test_start_and_end_select_positions(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", *({"image": f"{n}.jpg"} for n in range(6)))
    assert [s.index for s in read_samples(data, 2, 4)] == [2, 3]
    assert [s.index for s in read_samples(data, 4)] == [4, 5]


def test_reading_a_log_being_written_never_changes_it(tmp_path):
    # `flask evaluate` may read results.jsonl while a batch is appending its next line.
    log = ResultsLog(tmp_path / "results.jsonl")
    log.append({"sample_id": "000000"})
    with open(log.path, "a") as handle:
        handle.write('{"sample_id": "000001", "outp')  # the line being written
    before = log.path.read_bytes()
    assert log.read() == [{"sample_id": "000000"}]
    assert log.path.read_bytes() == before


def test_repair_cuts_a_line_torn_by_a_crash_before_appending(tmp_path):
    log = ResultsLog(tmp_path / "results.jsonl")
    log.append({"sample_id": "000000"})
    with open(log.path, "a") as handle:
        handle.write('{"sample_id": "000001", "outp')  # killed mid-write
    log.repair()
    log.append({"sample_id": "000001"})
    assert [r["sample_id"] for r in log.read()] == ["000000", "000001"]
