"""The IR cache: exported once, re-exported when stale, one exporter at a time, never half written."""
from __future__ import annotations

import threading

import pytest

from guidepost.ir_cache import ensure_exported, export_identity, ir_folder, is_current


def test_folder_names_are_safe_and_distinct(tmp_path):
    folder = ir_folder(tmp_path, "HuggingFaceTB/SmolVLM-256M-Instruct", "main", "int8")
    assert folder == tmp_path / "openvino" / "HuggingFaceTB--SmolVLM-256M-Instruct-main-int8"
    assert ir_folder(tmp_path, "x", "main", "int4") != ir_folder(tmp_path, "x", "main", "int8")


def test_export_once_then_again_when_the_source_changes(tmp_path):
    source = tmp_path / "model"
    source.mkdir()
    (source / "weights.bin").write_bytes(b"1")
    calls = []

    def export(target):
        calls.append(target)
        (target / "model.xml").write_text("ir")

    folder = tmp_path / "cache" / "m"
    assert ensure_exported(folder, export_identity(str(source), "main", "int8"), export, "m") == (folder, True)
    assert ensure_exported(folder, export_identity(str(source), "main", "int8"), export, "m") == (folder, False)
    (source / "weights.bin").write_bytes(b"22")  # a rebuilt local model
    assert ensure_exported(folder, export_identity(str(source), "main", "int8"), export, "m")[1] is True
    assert len(calls) == 2 and (folder / "model.xml").read_text() == "ir"


def test_a_failed_export_leaves_nothing_behind(tmp_path):
    def broken(target):
        (target / "model.xml").write_text("half")
        raise RuntimeError("out of memory")

    folder = tmp_path / "cache" / "m"
    with pytest.raises(RuntimeError):
        ensure_exported(folder, {"source": "m"}, broken, "m")
    assert not folder.exists() and list(folder.parent.iterdir()) == [folder.parent / ".m.lock"]
    assert not is_current(folder, {"source": "m"})


def test_concurrent_starts_export_once(tmp_path, monkeypatch):
    # Workers starting together: while one exports, the others wait on the lock and reuse its IR.
    from guidepost import ir_cache

    checked, exporting, release, calls = threading.Semaphore(0), threading.Event(), threading.Event(), []
    real_is_current = ir_cache.is_current

    def counting_is_current(folder, identity):
        checked.release()
        return real_is_current(folder, identity)
    monkeypatch.setattr(ir_cache, "is_current", counting_is_current)

    def blocking_export(target):
        calls.append(1)
        exporting.set()
        assert release.wait(30), "the test never released the export"
        (target / "model.xml").write_text("ir")

    folder, results = tmp_path / "cache" / "m", []
    first = threading.Thread(target=lambda: results.append(ensure_exported(folder, {"s": 1}, blocking_export, "m")))
    first.start()
    assert exporting.wait(30)
    others = [threading.Thread(target=lambda: results.append(ensure_exported(folder, {"s": 1}, blocking_export, "m")))
              for _ in range(3)]
    for thread in others:
        thread.start()
    for _ in range(2 + 3):  # the first thread's two checks, then each other one found no IR yet
        assert checked.acquire(timeout=30)
    release.set()
    for thread in [first, *others]:
        thread.join()
    assert len(calls) == 1 and sorted(exported for _, exported in results) == [False, False, False, True]


def test_an_ir_made_by_another_transformers_is_stale(tmp_path, monkeypatch):
    # The export traces transformers' modelling code (and the idefics3 cap lift was checked against one version).
    from guidepost import ir_cache

    folder = tmp_path / "cache" / "m"
    ensure_exported(folder, export_identity("org/model", "main", "int8"), lambda t: (t / "m.xml").write_text("ir"), "m")
    assert is_current(folder, export_identity("org/model", "main", "int8"))
    real = ir_cache.version
    monkeypatch.setattr(ir_cache, "version", lambda name: "99.0" if name == "transformers" else real(name))
    assert not is_current(folder, export_identity("org/model", "main", "int8"))


def test_compiled_models_are_cached_beside_the_ir_unless_the_cache_is_read_only(tmp_path, monkeypatch):
    from guidepost import ir_cache

    properties = ir_cache.openvino_properties("LATENCY", 0, "CPU", {}, tmp_path)
    assert properties["CACHE_DIR"] == str(tmp_path / "openvino" / "compiled")
    assert ir_cache.openvino_properties("LATENCY", 0, "CPU", {"CACHE_DIR": ""}, tmp_path)["CACHE_DIR"] == ""
    # Tests run as root, for whom every folder is writable: make the access check answer as a read-only mount would.
    monkeypatch.setattr(ir_cache.os, "access", lambda path, mode: False)
    assert "CACHE_DIR" not in ir_cache.openvino_properties("LATENCY", 0, "CPU", {}, tmp_path)


def test_compiling_takes_turns_and_tolerates_a_read_only_cache(tmp_path, monkeypatch):
    from filelock import FileLock

    from guidepost.ir_cache import compiling

    folder = tmp_path / "openvino" / "model-main-int8"
    folder.mkdir(parents=True)
    other_entered = threading.Event()

    def other():
        with compiling(folder):
            other_entered.set()
    with compiling(folder):
        thread = threading.Thread(target=other)
        thread.start()
        assert not other_entered.wait(0.3), "a second compile of the same IR ran while the first held the lock"
    assert other_entered.wait(10)
    thread.join()

    def read_only(self, *args, **kwargs):
        raise PermissionError("read-only file system")
    monkeypatch.setattr(FileLock, "acquire", read_only)
    with compiling(folder):
        pass  # the models still compile, without the lock
