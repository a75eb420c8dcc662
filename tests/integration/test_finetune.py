"""`flask finetune train` on the tiny preset and the synthetic read set; serving the adapter it writes."""
from __future__ import annotations

import io
import json
import shutil
import time

import pytest
import torch
from PIL import Image

from guidepost import ConfigError
from guidepost.adapters import MANIFEST, weights_hash
from guidepost.config import PROJECT_ROOT
from guidepost_tools.batch.dataset import read_samples
from guidepost_tools.cli.finetune import finetune_command
from guidepost_tools.finetune.examples import IGNORE, build_examples, collate
from guidepost_tools.finetune.run import TrainingRequest, run_training
from guidepost_tools.finetune.training import mean_loss
from tests.helpers import FlaskCli, presets_dir, started_app, vlm_answer

READ = PROJECT_ROOT / "tests" / "data" / "read"
TINY = (PROJECT_ROOT / "models" / "tiny.yaml").read_text()
ADAPTER = "read-test"
# A learning rate far above the 1e-4 default: random tiny models move visibly within a few epochs.
FAST = ["--lr", "5e-3", "--no-progress"]


def invoke(app, *args):
    return app.test_cli_runner().invoke(finetune_command, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def data(tmp_path_factory, app):
    """The synthetic read set split 18 / 6 by `flask finetune split`."""
    folder = tmp_path_factory.mktemp("finetune") / "read"
    shutil.copytree(READ, folder)
    result = invoke(app, "split", folder / "data.jsonl", "--val", 0.25, "--seed", 0)
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def trained(app, data, model_cache):
    """A LoRA adapter trained for 4 epochs on the tiny preset, through the command users run."""
    result = invoke(app, "train", "--preset", "tiny", "--train", data / "train.jsonl",
                    "--val", data / "val.jsonl", "--output", ADAPTER, "--epochs", 4, *FAST)
    assert result.exit_code == 0, result.output
    return model_cache / "adapters" / ADAPTER


@pytest.fixture(scope="module")
def tuned_app(make_app, trained):
    return make_app(adapter=ADAPTER)


def test_training_lowers_the_loss_and_writes_the_adapter_folder(trained, data):
    log = json.loads((trained / "training_log.json").read_text())
    train_losses = [epoch["train_loss"] for epoch in log["epochs"]]
    assert len(train_losses) == 4 and train_losses[-1] < train_losses[0]
    assert log["epochs"][-1]["val_loss"] < log["base_val_loss"], "held-out lines got more likely too"
    manifest = json.loads((trained / MANIFEST).read_text())
    assert manifest["base"] == {"id": "tiny-llava", "revision": "main", "source": "tiny", "model_type": "llava"}
    assert manifest["preset"] == "tiny" and manifest["split"]["seed"] == 0
    assert manifest["datasets"]["train"]["lines"] == 18 and manifest["datasets"]["val"]["lines"] == 6
    split = json.loads((data / "split.json").read_text())
    assert manifest["datasets"]["train"]["sha256"] == split["sha256"]["train"]
    assert manifest["hyperparameters"]["lr"] == 5e-3 and manifest["hyperparameters"]["lora_r"] == 8
    assert manifest["best_epoch"] == min(manifest["losses"], key=lambda e: e["val_loss"])["epoch"]
    assert set(manifest["prompts"]) == {"read/en.yaml"} and manifest["versions"]["peft"]
    assert (trained / "adapter_model.safetensors").is_file() and (trained / "tokenizer.json").is_file()
    assert (trained / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert_language_model_only(trained, "language_model")


def test_training_is_repeatable_with_a_seed(app, data):
    def losses(name):
        request = TrainingRequest(preset="tiny", train=data / "val.jsonl", val=data / "val.jsonl", output=name,
                                  epochs=2, lr=5e-3, progress=False)
        return run_training(app.extensions["guidepost"], request, echo=lambda _: None)[1].losses()
    assert losses("repeat-1") == losses("repeat-2")


def test_labels_are_the_reference_tokens_and_the_prompt_is_the_servers(app, client, data):
    pipeline = app.extensions["guidepost"].pipeline
    samples = read_samples(data / "val.jsonl")[:2]
    examples = build_examples(samples, pipeline, app.extensions["guidepost"].limits)
    tokenizer = pipeline.vlm.processor.tokenizer
    for sample, example in zip(samples, examples):
        labels = example.labels[0]
        answer = labels[labels != IGNORE].tolist()
        assert tokenizer.decode(answer[:-1]) == sample.references[0] and answer[-1] == tokenizer.eos_token_id
        prompt_length = len(labels) - len(answer)
        assert (labels[:prompt_length] == IGNORE).all(), "prompt and image tokens are never labels"
        image = Image.open(sample.images[0]).convert("RGB")
        served = pipeline.vlm.preprocess([image], example.prompt)["input_ids"][0]
        assert example.inputs["input_ids"][0, :prompt_length].tolist() == served.tolist()
        with open(sample.images[0], "rb") as handle:
            body = client.post("/process", data={"image": (handle, "c.jpg"), "task": "read"}).json
        assert body["prompt"] == example.kind, "the detector chose the same prompt as /process does"
        assert ("Read the text" in example.prompt) == (example.kind == "safe")
    batch = collate(examples, tokenizer.pad_token_id)
    shorter = min(range(2), key=lambda i: examples[i].labels.shape[1])
    padding = batch["labels"].shape[1] - examples[shorter].labels.shape[1]
    if padding:
        assert (batch["labels"][shorter, -padding:] == IGNORE).all()
        assert (batch["attention_mask"][shorter, -padding:] == 0).all()


def test_early_stopping_keeps_the_best_epoch(app, make_app, data, tmp_path):
    # Validation lines whose reference is nothing like the training text: its loss rises as training goes on.
    lines = [json.loads(line) for line in (data / "val.jsonl").read_text().splitlines()]
    for line in lines:
        line.update(reference="zzzz zzzz zzzz", image=str(data / line["image"]), container=None)
    (tmp_path / "rising.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = invoke(app, "train", "--preset", "tiny", "--train", data / "val.jsonl", "--val",
                    tmp_path / "rising.jsonl", "--output", "stopped", "--epochs", 30, "--patience", 2, *FAST)
    assert result.exit_code == 0, result.output
    manifest = json.loads((app.extensions["guidepost"].settings.model_cache / "adapters" / "stopped" / MANIFEST)
                          .read_text())
    assert manifest["stopped_early"] and manifest["epochs_run"] == manifest["best_epoch"] + 2 < 30
    best = manifest["losses"][manifest["best_epoch"] - 1]["val_loss"]
    assert all(epoch["val_loss"] > best for epoch in manifest["losses"][manifest["best_epoch"]:])
    # The adapter on disk is the best epoch's, not the last one's: served, it gives the best validation loss.
    served = make_app(adapter="stopped").extensions["guidepost"]
    examples = build_examples(read_samples(tmp_path / "rising.jsonl"), served.pipeline, served.limits)
    loss = mean_loss(served.pipeline.vlm.model, examples, 4, 0, "cpu")
    assert loss == pytest.approx(best, rel=1e-4)


def test_the_served_adapter_changes_the_answer_and_info_shows_it(app, tuned_app, trained, street_photo, jpeg):
    prompt = "Read the text in this photo exactly."
    base = vlm_answer(app.extensions["guidepost"].pipeline.vlm, [street_photo], prompt)
    tuned = vlm_answer(tuned_app.extensions["guidepost"].pipeline.vlm, [street_photo], prompt)
    assert tuned != base
    # Merged: the served model is the base architecture with other weights, no LoRA layers left to run.
    models = [a.extensions["guidepost"].pipeline.vlm.model for a in (app, tuned_app)]
    assert [type(m) for m in models[1].modules()] == [type(m) for m in models[0].modules()]
    assert sum(p.numel() for p in models[1].parameters()) == sum(p.numel() for p in models[0].parameters())
    client = tuned_app.test_client()
    info = client.get("/info").json["adapter"]
    assert info["name"] == ADAPTER and info["sha256"] == weights_hash(trained)
    assert info["manifest"]["base"]["id"] == "tiny-llava" and info["manifest"]["best_epoch"]
    body = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}).json
    assert body["model"]["adapter"] == ADAPTER
    base_body = app.test_client().post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}).json
    assert "adapter" not in base_body["model"]


def test_merged_weights_give_the_unmerged_peft_models_tokens(tuned_app, trained, model_cache, street_photo, photo):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    merged = tuned_app.extensions["guidepost"].pipeline.vlm
    base = AutoModelForImageTextToText.from_pretrained(model_cache / "tiny" / "llava").eval()
    unmerged = PeftModel.from_pretrained(base, str(trained)).eval()
    for images, prompt in (([street_photo], "Read the sign."), ([photo, street_photo], "Compare the two.")):
        inputs = merged.preprocess(images, prompt)
        generation = merged.stream(inputs, deadline=time.monotonic() + 60, max_new_tokens=16)
        for _ in generation:
            pass
        with torch.inference_mode():
            output = unmerged.generate(**inputs, max_new_tokens=16, do_sample=False)
        assert output[0, inputs["input_ids"].shape[1]:].tolist() == generation.tokens and len(generation.tokens) > 1


def test_an_adapter_for_another_base_or_a_missing_one_stops_start_up(trained, model_cache, tmp_path):
    presets = presets_dir(tmp_path / "models", **{"tiny-smol": TINY.replace("tiny-llava", "tiny-idefics3"),
                                                  "tiny-tuned": TINY.replace("id: tiny-llava", "id: tiny-llava\n  "
                                                                             f"adapter: {ADAPTER}")})
    settings = {"model_cache": str(model_cache), "presets_dir": str(presets)}
    with pytest.raises(ConfigError, match="trained for base model 'tiny-llava'.*It needs base model 'tiny-llava'"):
        started_app({**settings, "preset": "tiny-smol", "adapter": ADAPTER})
    with pytest.raises(ConfigError, match="adapter 'nope' not found.*trained for 'tiny-llava'"):
        started_app({**settings, "preset": "tiny-tuned", "adapter": "nope"})
    # A preset may name the adapter; GUIDEPOST_ADAPTER=none serves its base model.
    assert started_app({**settings, "preset": "tiny-tuned", "load": "lazy"}).extensions["guidepost"] \
        .deployment.adapter.name == ADAPTER
    assert started_app({**settings, "preset": "tiny-tuned", "adapter": "none", "load": "lazy"}) \
        .extensions["guidepost"].deployment.adapter is None


def test_training_refuses_todo_lines_and_an_existing_adapter(app, data, trained, tmp_path):
    lines = (data / "val.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"reference": "', '"reference": "TODO", "was": "')
    (tmp_path / "todo.jsonl").write_text("\n".join(line.replace('"images/', f'"{data}/images/') for line in lines))
    result = invoke(app, "train", "--train", tmp_path / "todo.jsonl", "--val", data / "val.jsonl", "--output", "x")
    assert result.exit_code != 0 and "line 2" in result.output and "still TODO" in result.output
    again = invoke(app, "train", "--train", data / "train.jsonl", "--val", data / "val.jsonl", "--output", ADAPTER)
    assert again.exit_code != 0 and "--force" in again.output


@pytest.mark.parametrize("family", ["tiny-idefics3", "tiny-qwen2.5-vl"])
def test_other_families_train_through_their_own_processor(app, data, model_cache, tmp_path, family):
    preset = TINY.replace("tiny-llava", family)
    if family == "tiny-idefics3":  # Idefics3 names its language model text_model, as the default preset says
        preset = preset.replace(r"'.*\.language_model", r"'.*\.text_model")
    presets = presets_dir(tmp_path / "models", family=preset)
    ext = started_app({"preset": "family", "presets_dir": str(presets), "model_cache": str(model_cache),
                       "load": "lazy"}).extensions["guidepost"]
    request = TrainingRequest(preset="family", train=data / "val.jsonl", val=data / "val.jsonl",
                              output=f"family-{family}", epochs=1, batch_size=3, lr=5e-3, progress=False)
    folder, history = run_training(ext, request, echo=lambda _: None)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["base"]["id"] == family and history.epochs[0]["train_loss"] > 0
    assert_language_model_only(folder, "text_model" if family == "tiny-idefics3" else "language_model")


def assert_language_model_only(folder, language_model: str) -> None:
    """The adapter holds LoRA weights for the language model's projections only: the vision tower stays frozen."""
    from safetensors import safe_open

    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    assert names and all(f".{language_model}.layers." in name and "lora_" in name for name in names)
    assert {name.split(".lora_")[0].rsplit(".", 1)[1] for name in names} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_openvino_serves_the_merged_adapter_with_torchs_tokens(tuned_app, make_app, trained, model_cache, tmp_path,
                                                                street_photo, photo):
    # f32 compute and KV cache, as in test_openvino.py: torch-identical greedy tokens are then expected.
    exact = "\nopenvino: {weights: fp32, config: {INFERENCE_PRECISION_HINT: f32, KV_CACHE_PRECISION: f32}}\n"
    presets = presets_dir(tmp_path / "models", **{"tiny-ov": TINY.replace("backend: torch", "backend: openvino")
                                                  + exact})
    ov_app = make_app(preset="tiny-ov", presets_dir=str(presets), adapter=ADAPTER)
    ov_vlm, torch_vlm = (a.extensions["guidepost"].pipeline.vlm for a in (ov_app, tuned_app))
    assert type(ov_vlm).__name__ == "OpenVINOVLM"
    for images, prompt in (([street_photo], "Read the sign."), ([photo, street_photo], "Compare the two.")):
        expected = vlm_answer(torch_vlm, images, prompt)
        assert expected and vlm_answer(ov_vlm, images, prompt) == expected
    # The IR is keyed by the adapter's hash: a retrained adapter is exported again, never served from this one.
    sha = weights_hash(trained)
    marker = json.loads((model_cache / "openvino" / f"tiny-llava-main-fp32-lora-{sha[:12]}" / "guidepost-export.json")
                        .read_text())
    assert marker["adapter"] == {"name": ADAPTER, "sha256": sha}
    assert ov_app.test_client().get("/info").json["adapter"]["sha256"] == sha


def test_batch_evaluate_and_compare_base_with_tuned(app, tuned_app, data, tmp_path):
    runs = {}
    for name, served in (("base", app), ("tuned", tuned_app)):
        cli = FlaskCli(served)
        result = cli.invoke(["batch", "--input", str(data / "val.jsonl"), "--output-dir", str(tmp_path / name),
                             "--no-progress"])
        assert result.exit_code == 0, result.output
        (runs[name],) = (tmp_path / name).glob("batch_*/results.jsonl")
        result = cli.invoke(["evaluate", "--results", str(runs[name])])
        assert result.exit_code == 0 and "read (6)  exact match" in result.output, result.output
        statistics = json.loads((runs[name].parent / "statistics.json").read_text())
        assert statistics["read"]["evaluated"] == 6 and statistics["read"]["containers"]["labelled"] >= 4
        assert all("codes" in record["output"] for record in map(json.loads, runs[name].read_text().splitlines()))
    result = FlaskCli(app).invoke(["evaluate", "--compare", str(runs["base"]), str(runs["tuned"]),
                                   "--output-dir", str(tmp_path / "compared")])
    assert result.exit_code == 0, result.output
    assert "| read: character error rate (lower is better) |" in result.output
    comparison = json.loads((tmp_path / "compared" / "comparison.json").read_text())
    assert comparison["samples_compared"] == 6 and len(comparison["samples"]) == 6
    assert (tmp_path / "compared" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "| sample | task | reference |" in (tmp_path / "compared" / "comparison.md").read_text()
    assert FlaskCli(app).invoke(["evaluate"]).exit_code != 0, "--results or --compare is needed"
