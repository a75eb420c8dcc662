"""The OpenVINO IR cache: one folder per model, revision and weight format, exported once and reused."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from .files import build_once
from .versions import version

log = logging.getLogger(__name__)

MARKER = "guidepost-export.json"
# int4 weights are quantised in groups of 128 input channels, optimum-intel's default for LLMs.
INT4_GROUP_SIZE = 128
_HEARTBEAT_S = 10.0


def ir_folder(cache_dir: Path, model: str, revision: str | None, weights: str, adapter_hash: str | None = None) -> Path:
    """model_cache/openvino/<model>-<revision>-<weights>[-lora-<hash>]/, the model id made a safe folder name."""
    name = f"{model.removeprefix('local-dir:')}-{revision or 'none'}-{weights}"
    if adapter_hash:  # a merged adapter is another model: its own IR, keyed by the adapter's hash
        name += f"-lora-{adapter_hash[:12]}"
    return Path(cache_dir) / "openvino" / re.sub(r"[^\w.-]+", "--", name).strip("-")


def files_fingerprint(*paths: Path) -> list:
    """Name, size and mtime of every file under the given local paths: a rebuilt local model changes it."""
    stats = []
    for path in paths:
        for f in sorted(path.rglob("*") if path.is_dir() else [path]):
            if f.is_file():
                stats.append([f.name, f.stat().st_size, f.stat().st_mtime_ns])
    return stats


def export_identity(source: str, revision: str | None, weights: str) -> dict:
    """What an exported IR was made from; a different identity means the IR is stale and is exported again."""
    local = Path(source.removeprefix("local-dir:")).expanduser()
    return {"source": source, "revision": revision, "weights": weights,
            "files": files_fingerprint(local) if local.exists() else None,
            "versions": {name: version(name) for name in (
                "openvino", "optimum-intel", "nncf", "transformers", "open_clip_torch")}}


def is_current(folder: Path, identity: dict) -> bool:
    """Whether folder holds a finished export of exactly this identity."""
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8")) == identity
    except (OSError, ValueError):
        return False


def ensure_exported(folder: Path, identity: dict, export: Callable[[Path], None], what: str) -> tuple[Path, bool]:
    """Return (folder, exported_now): the IR for identity, exported into folder once if absent or stale.

    Workers starting together export once (files.build_once): the others wait and reuse the result.
    """
    def build(staging: Path) -> None:
        with _progress(what, folder, staging):
            export(staging)
        (staging / MARKER).write_text(json.dumps(identity, indent=2), encoding="utf-8")

    return folder, build_once(folder, build, lambda target: is_current(target, identity))


@contextlib.contextmanager
def _progress(what: str, folder: Path, staging: Path) -> Iterator[None]:
    # An export of a real model takes tens of seconds and gigabytes of RAM: log while it runs, not silence.
    log.info("exporting %s to OpenVINO IR in %s (once; a 0.58B model took 25-55 s and up to 4.8 GB RAM on "
             "2 cores)", what, folder)
    started, done = time.monotonic(), threading.Event()

    def beat():
        while not done.wait(_HEARTBEAT_S):
            log.info("still exporting %s: %.0f s so far", what, time.monotonic() - started)

    threading.Thread(target=beat, name="guidepost-export-progress", daemon=True).start()
    try:
        yield
    finally:
        done.set()
    log.info("exported %s in %.1f s (%.0f MB)", what, time.monotonic() - started, folder_size_mb(staging))


def folder_size_mb(folder: Path) -> float:
    """Size of every file under folder, in MB."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def openvino_properties(hint: str, threads: int, device: str, extra: dict, cache_dir: Path) -> dict:
    """The compile-time properties shared by both models: hint, threads, compiled-model cache, extras."""
    properties = {"PERFORMANCE_HINT": hint, **extra}
    if threads:
        properties["INFERENCE_NUM_THREADS"] = str(threads)
    # OpenVINO keeps each compiled model (GPU kernels; CPU graphs with repacked weights) so a restart imports it
    # instead of compiling: 1.7 s -> 0.35 s for SmolVLM's three CPU models. `CACHE_DIR: ""` in config turns it off.
    if "CACHE_DIR" not in properties and (compiled := compiled_cache(cache_dir)) is not None:
        properties["CACHE_DIR"] = str(compiled)
    return properties


def compiled_cache(cache_dir: Path) -> Path | None:
    """Where OpenVINO keeps compiled models (its own blob names; safe to delete, the next start refills it); None
    when the model cache is read-only (an image baked with its IR), so models compile at each start instead."""
    folder = Path(cache_dir) / "openvino" / "compiled"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    if os.access(folder, os.W_OK | os.X_OK):
        return folder
    log.info("%s is not writable: OpenVINO compiles the models at every start", folder)
    return None


@contextlib.contextmanager
def compiling(folder: Path) -> Iterator[None]:
    """Hold while compiling an IR folder's models: processes take turns, so one writes OpenVINO's cached blobs and
    the others import them (OpenVINO writes a blob in place; a process reading it half-written could fail)."""
    lock = FileLock(folder.parent / f".{folder.name}.compile.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another worker compiling %s", folder.name)
        lock.acquire()
    except OSError:  # a read-only model cache: nothing is written there, so there is nothing to take turns for
        yield
        return
    try:
        yield
    finally:
        lock.release()
