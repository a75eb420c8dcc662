"""`flask finetune prepare` and `split`: the annotation template, the checks before training and the seeded split."""
from __future__ import annotations

import json
import shutil

import pytest

from guidepost import create_app
from guidepost.config import PROJECT_ROOT
from guidepost_tools.cli.finetune import finetune_command
from tests.helpers import encode

READ = PROJECT_ROOT / "tests" / "data" / "read"


@pytest.fixture(scope="module")
def invoke(tmp_path_factory):
    """`flask finetune ...` on an app that loads no model (prepare and split never need one)."""
    app = create_app({"preset": "tiny", "model_cache": str(tmp_path_factory.mktemp("cache"))})
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(finetune_command, [str(arg) for arg in args])


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def labelled(tmp_path):
    """A copy of the synthetic read dataset: 24 labelled lines, images beside them."""
    shutil.copytree(READ, tmp_path / "read")
    return tmp_path / "read" / "data.jsonl"


def test_prepare_writes_a_template_and_never_overwrites_labels(invoke, tmp_path, photo):
    photos = tmp_path / "photos"
    (photos / "gate").mkdir(parents=True)
    for name in ("b.jpg", "a.png", "gate/c.JPG"):
        (photos / name).write_bytes(encode(photo, "PNG" if name.endswith("png") else "JPEG"))
    (photos / "notes.txt").write_text("not a photo")
    output = tmp_path / "labels" / "annotations.jsonl"
    output.parent.mkdir()
    result = invoke("prepare", "--images", photos, "--output", output, "--task", "read")
    assert result.exit_code == 0, result.output
    lines = read_jsonl(output)
    assert [line["image"] for line in lines] == ["../photos/a.png", "../photos/b.jpg", "../photos/gate/c.JPG"]
    assert all(line["reference"] == "TODO" and line["task"] == "read" for line in lines)
    assert lines[0]["container"] == {"owner": "", "serial": "", "check_digit": ""}

    output.write_text(output.read_text().replace("TODO", "EXIT", 1))  # a label someone typed
    refused = invoke("prepare", "--images", photos, "--output", output)
    assert refused.exit_code != 0 and "--force" in refused.output and "EXIT" in output.read_text()
    assert invoke("prepare", "--images", photos, "--output", output, "--force").exit_code == 0
    assert "container" not in read_jsonl(output)[0] and "task" not in read_jsonl(output)[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in invoke("prepare", "--images", empty, "--output", tmp_path / "x.jsonl").output


def test_split_is_seeded_and_writes_train_val_and_its_record(invoke, labelled, tmp_path):
    result = invoke("split", labelled, "--val", 0.2, "--seed", 0)
    assert result.exit_code == 0, result.output
    folder = labelled.parent
    train, val = read_jsonl(folder / "train.jsonl"), read_jsonl(folder / "val.jsonl")
    assert (len(train), len(val)) == (19, 5)
    everything = read_jsonl(labelled)
    assert sorted(map(json.dumps, train + val)) == sorted(map(json.dumps, everything)), "each line exactly once"
    record = json.loads((folder / "split.json").read_text())
    assert record["seed"] == 0 and record["lines"] == {"train": 19, "val": 5}

    # The same seed gives the same split; another seed another one; elsewhere, image paths still resolve.
    assert invoke("split", labelled, "--seed", 0).exit_code != 0, "existing files need --force"
    other = tmp_path / "elsewhere"
    assert invoke("split", labelled, "--seed", 0, "--output-dir", other).exit_code == 0
    moved = read_jsonl(other / "val.jsonl")
    assert [line["reference"] for line in moved] == [line["reference"] for line in val]
    assert all((other / line["image"]).is_file() for line in moved)
    assert invoke("split", labelled, "--seed", 1, "--output-dir", other, "--force").exit_code == 0
    assert [line["reference"] for line in read_jsonl(other / "val.jsonl")] != [line["reference"] for line in val]


def test_split_refuses_todo_lines_broken_images_and_bad_container_labels(invoke, labelled):
    lines = read_jsonl(labelled)
    lines[2]["reference"] = "TODO"
    lines[7]["reference"] = " "
    (labelled.parent / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    lines[9]["image"] = "images/broken.jpg"
    lines[11]["container"]["owner"] = "CSQ"
    lines[12]["image"] = "images/missing.jpg"
    labelled.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = invoke("split", labelled)
    assert result.exit_code != 0
    for expected in ("line 3 (images/002.jpg): reference is still TODO", "line 8 (images/007.jpg): reference",
                     "broken.jpg): image does not decode", "line 12 (images/011.jpg): container owner 'CSQ'",
                     "missing.jpg): image file not found", "5 problem(s)"):
        assert expected in result.output
    assert not (labelled.parent / "train.jsonl").exists(), "nothing is written while a line is unusable"


def test_a_painted_check_digit_that_does_not_match_is_a_warning(invoke, labelled):
    result = invoke("split", labelled)
    assert result.exit_code == 0
    wrong = [line for line in read_jsonl(labelled) if line["reference"] == "BZRU 097802 7"]
    assert wrong and "container BZRU0978027 has a check digit that does not match" in result.output
