"""Start-up as a worker sees it: GUIDEPOST_LOAD, what a worker imports, backends by name."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading

import pytest

from guidepost import ConfigError, create_app
from guidepost.config import PROJECT_ROOT
from tests.helpers import presets_dir, sse_events, started_app

# The tools' stack: a gunicorn worker must never import it (it costs start-up time and memory in every worker).
TOOLS_ONLY = ("guidepost_tools", "matplotlib", "nltk", "rouge_score", "kiwipiepy", "skimage", "sacrebleu")

_WORKER = """
import io, json, sys
import wsgi  # what gunicorn imports in each worker
from PIL import Image
buf = io.BytesIO(); Image.new("RGB", (64, 48), (90, 90, 90)).save(buf, "JPEG")
status = wsgi.app.test_client().post("/process", data={"image": (io.BytesIO(buf.getvalue()), "p.jpg")}).status_code
print(json.dumps({"status": status, "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def test_a_worker_never_imports_the_tools(model_cache):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GUIDEPOST_")}, "GUIDEPOST_PRESET": "tiny",
           "GUIDEPOST_MODEL_CACHE": str(model_cache), "GUIDEPOST_LOAD": "eager"}
    out = subprocess.run([sys.executable, "-c", _WORKER], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    worker = json.loads(out.stdout.strip().splitlines()[-1])
    assert worker["status"] == 200
    assert not set(TOOLS_ONLY) & set(worker["modules"]), "a worker imported the tools' stack"
    assert "peft" not in worker["modules"], "peft is imported only by a deployment that serves an adapter"


def test_lazy_loads_on_the_first_request(model_cache, jpeg):
    app = started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "lazy"})
    ext = app.extensions["guidepost"]
    assert ext.state == "loading" and not ext.wait(0), "nothing loads before a request"
    client = app.test_client()
    assert client.get("/healthz").status_code == 200  # the first request starts loading in the background
    assert ext.wait(120) and ext.ready
    assert client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg")}).status_code == 200


def test_eager_loads_before_serving(model_cache):
    ext = started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "eager"}).extensions["guidepost"]
    assert ext.ready and ext.pipeline is not None


def test_a_server_is_ready_to_warn_while_its_vlm_warms_up(model_cache, jpeg, monkeypatch):
    from guidepost.vlm.base import VLM

    release, warming = threading.Event(), threading.Event()
    forward = VLM.forward

    def first_call_waits(self, *args, **kwargs):
        if not warming.is_set():  # the warm-up's generation: held until the test lets it go
            warming.set()
            assert release.wait(60), "the test never released the warm-up"
        return forward(self, *args, **kwargs)
    monkeypatch.setattr(VLM, "forward", first_call_waits)
    app = started_app({"preset": "tiny", "model_cache": str(model_cache), "load": "background"})
    ext = app.extensions["guidepost"]
    assert ext.wait(120) and ext.ready
    assert warming.wait(30) and not ext.pipeline.vlm_warm.is_set(), "the worker waited for the VLM's warm-up to turn ready"
    client = app.test_client()
    response = client.post("/process", data={"image": (io.BytesIO(jpeg), "p.jpg"), "objects": "car"},
                           headers={"Accept": "text/event-stream"}, buffered=False)
    chunks = response.response
    first = sse_events([next(chunks)])
    assert first[0][0] == "hazard" and first[0][1]["danger"] is True, "the warning does not wait for the VLM"
    release.set()
    events = sse_events(chunks)
    done = next(data for name, data in events if name == "done")
    assert done["fallback"] is False, "the description came after the warm-up"
    assert ext.pipeline.vlm_warm.wait(30)


def test_create_app_alone_loads_nothing(model_cache):
    ext = create_app({"preset": "tiny", "model_cache": str(model_cache)}).extensions["guidepost"]
    assert ext.state == "loading" and ext.pipeline is None and not ext.wait(0)


@pytest.mark.parametrize("value, mode", [(False, "eager"), (True, "background")])
def test_the_old_load_setting_still_works(value, mode):
    from guidepost.config import load_settings

    assert load_settings({"load_in_background": value}).load == mode
    assert load_settings({"load_in_background": value, "load": "lazy"}).load == "lazy", "the new name wins"


def test_unknown_backend_names_the_known_ones(tmp_path, model_cache):
    presets = presets_dir(tmp_path / "models", odd="backend: tensorrt\ndetector: {arch: x}\nvlm: {id: y}\n")
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'.*torch.*openvino"):
        create_app({"preset": "odd", "presets_dir": str(presets), "model_cache": str(model_cache)})
    with pytest.raises(ConfigError, match="GUIDEPOST_BACKEND='tensorrt'"):
        create_app({"preset": "tiny", "backend": "tensorrt", "model_cache": str(model_cache)})


def test_apps_loading_at_once_in_one_process_all_get_whole_models(tmp_path, model_cache):
    # transformers swaps module globals while building a model; loads that overlap could leave the next model
    # with uninitialised (meta) or untied weights. The tiny DeepSeek-VL ties its output layer to its embeddings.
    import threading

    import torch

    tiny = (PROJECT_ROOT / "models" / "tiny.yaml").read_text()
    families = ("tiny-llava", "tiny-idefics3", "tiny-qwen2.5-vl", "tiny-deepseek-vl-hybrid")
    presets = presets_dir(tmp_path / "models", **{name: tiny.replace("tiny-llava", name) for name in families})
    apps = []

    def load(name):
        apps.append(started_app({"preset": name, "presets_dir": str(presets), "model_cache": str(model_cache),
                                 "load": "eager"}))
    threads = [threading.Thread(target=load, args=(name,)) for name in families * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(apps) == len(threads), "every app loaded"
    for app in apps:
        model = app.extensions["guidepost"].pipeline.vlm.model
        assert not any(p.is_meta for p in model.parameters())
        output, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
        if getattr(model.config, "tie_word_embeddings", False):
            assert output.weight.data_ptr() == embeddings.weight.data_ptr() or torch.equal(output.weight,
                                                                                           embeddings.weight)
