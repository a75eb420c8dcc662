"""Runs samples through an answerer into a run folder: results.jsonl (crash-safe), summary.json, image copies."""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from guidepost.files import atomic_write

from .answerers import SampleFailed
from .dataset import Sample

RESULTS, SUMMARY, IMAGES = "results.jsonl", "summary.json", "output_images"


class ResultsLog:
    """results.jsonl: one line per finished sample, flushed and fsynced, so a kill -9 loses nothing written."""

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> list[dict]:
        """Every complete record; never writes (a batch may still be appending the last line)."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        records = []
        for line in data[:data.rfind(b"\n") + 1].splitlines():  # a torn last line is not a record yet
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line edited by hand
        return records

    def repair(self) -> None:
        """Cut a line torn by a crash mid-write, so appending continues cleanly (only before appending again)."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(end)

    def append(self, record: dict) -> None:
        """Write one record as one line, durable before returning."""
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def new_run_folder(output_dir: Path) -> Path:
    """output_dir/batch_<UTC timestamp>/, never reusing an existing folder."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder, n = output_dir / f"batch_{stamp}", 1
    while folder.exists():
        folder, n = output_dir / f"batch_{stamp}-{n}", n + 1
    folder.mkdir(parents=True)
    return folder


def read_summary(folder: Path) -> dict:
    """The summary.json of an earlier run (it holds the settings a resume continues with)."""
    path = folder / SUMMARY
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a batch run folder: it has no {SUMMARY}")
    return json.loads(path.read_text(encoding="utf-8"))


def write_summary(folder: Path, summary: dict) -> None:
    """Replace summary.json atomically: a crash leaves the old or the new one, never half of one."""
    atomic_write(folder / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False))


def run_samples(samples: list[Sample], answerer, folder: Path, *, progress: bool = True) -> tuple[int, float]:
    """Answer every sample not yet in folder/results.jsonl; returns (samples answered now, seconds taken)."""
    log = ResultsLog(folder / RESULTS)
    log.repair()  # the only writer: a line torn by an earlier crash is cut before this run appends
    done = {record["sample_id"] for record in log.read()}
    todo = [sample for sample in samples if sample.sample_id not in done]
    started = time.perf_counter()
    bar = tqdm(total=len(todo), unit="sample", desc="batch", disable=not progress, dynamic_ncols=True)
    failed = 0
    # A bounded window of samples in flight keeps memory flat on any dataset; taking them back in submission
    # order keeps results.jsonl in input order while the pool still answers `concurrency` at a time.
    window = max(1, answerer.concurrency) * 2
    with ThreadPoolExecutor(max_workers=max(1, answerer.concurrency), thread_name_prefix="batch") as pool:
        in_flight: deque = deque()
        queue = iter(todo)
        while True:
            while len(in_flight) < window and (sample := next(queue, None)) is not None:
                in_flight.append(_submit(pool, answerer, sample, folder))
            if not in_flight:
                break
            record = in_flight.popleft().result()
            log.append(record)
            failed += record["error"] is not None
            bar.update(1)
            bar.set_postfix(failed=failed)
    bar.close()
    return len(todo), time.perf_counter() - started


def _submit(pool: ThreadPoolExecutor, answerer, sample: Sample, folder: Path):
    """Read and copy the sample's images here, then answer it on the pool; the future gives its record."""
    record = {"sample_id": sample.sample_id, "index": sample.index, "input": sample.record,
              # What evaluate compares with, in one shape whatever the input format was.
              "question": sample.text, "lang": sample.lang or "en", "references": sample.references,
              "hazards": sample.hazards,
              "output_images": [], "output": None, "error": None, "elapsed_ms": None}
    try:
        if sample.error:
            raise SampleFailed(sample.error.code, str(sample.error))
        images = []
        for n, path in enumerate(sample.images, start=1):
            images.append(_read_image(path))
            copy = folder / IMAGES / sample.sample_id / f"{n}_{path.name}"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            record["output_images"].append(str(copy.relative_to(folder)))
    except SampleFailed as exc:
        record["error"] = exc.as_record()
        return pool.submit(lambda: record)
    return pool.submit(_answer, answerer, sample, images, record)


def _read_image(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SampleFailed("missing_image", f"image file not found: {path}") from None
    except OSError as exc:
        raise SampleFailed("unreadable_image", f"cannot read {path}: {exc.strerror}") from None


def _answer(answerer, sample: Sample, images: list[bytes], record: dict) -> dict:
    started = time.perf_counter()
    try:
        record["output"] = answerer(sample.sample_id, images, sample.fields())
    except SampleFailed as exc:
        record["error"] = exc.as_record()
    except Exception as exc:  # a model bug must cost one sample, not the run
        record["error"] = {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}", "status": None}
    record["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return record


def summarize(records: list[dict], selected: int) -> dict:
    """Counts, errors by code, model ids and latency of every record written so far."""
    outputs = [record["output"] for record in records if record["output"] is not None]
    errors: dict[str, int] = {}
    for record in records:
        if record["error"]:
            errors[record["error"]["code"]] = errors.get(record["error"]["code"], 0) + 1
    totals = np.array([output["timings_ms"]["total"] for output in outputs], dtype=float)
    return {
        "counts": {"selected": selected, "done": len(records), "remaining": selected - len(records),
                   "succeeded": len(outputs), "failed": len(records) - len(outputs),
                   "fallback": sum(output["fallback"] for output in outputs),
                   "danger": sum(output["danger"] for output in outputs)},
        "errors": errors,
        "models": [json.loads(model) for model in sorted({json.dumps(output["model"], sort_keys=True)
                                                          for output in outputs})],
        "timings_ms": {} if not totals.size else {
            "mean": round(float(totals.mean()), 2), "p50": round(float(np.percentile(totals, 50)), 2),
            "p95": round(float(np.percentile(totals, 95)), 2), "max": round(float(totals.max()), 2)},
    }
