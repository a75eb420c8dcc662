"""`flask batch`: run a JSONL dataset through the pipeline (or a server) into a crash-safe run folder."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import click
from click.core import ParameterSource
from flask import current_app
from flask.cli import with_appcontext

from guidepost import Guidepost, ModelLoadError

from ..batch.answerers import HttpAnswerer, LocalAnswerer
from ..batch.dataset import read_samples
from ..batch.runner import RESULTS, ResultsLog, new_run_folder, read_summary, run_samples, summarize, write_summary

log = logging.getLogger(__name__)

# Options a resumed run takes from its summary.json; giving a different value is an error.
_STORED = ("input", "start_idx", "end_idx", "preset", "server", "concurrency")


@click.command("batch")
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL dataset: one {\"image\", \"text\"?, \"objects\"?, \"lang\"?, \"reference\"?, \"hazards\"?} "
                   "or multi-image {\"Question\", \"problem_image_N\", \"Final Answer\"?} per line; relative image "
                   "paths resolve against the file's folder. Required unless --resume.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out"),
              show_default=True, help="Where the run folder batch_<UTC timestamp>/ is created.")
@click.option("--preset", help="Model preset to load (default: GUIDEPOST_PRESET). Ignored with --server.")
@click.option("--start-idx", type=click.IntRange(min=0), default=0, show_default=True,
              help="First sample: position among the file's non-blank lines, from 0.")
@click.option("--end-idx", type=click.IntRange(min=0), default=None,
              help="Stop before this position (exclusive); default: the end of the file.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue an interrupted run folder: samples already in its results.jsonl are skipped, "
                   "settings come from its summary.json.")
@click.option("--server", help="Send samples to a running Guidepost at this URL instead of loading models here.")
@click.option("--concurrency", type=click.IntRange(min=1, max=64), default=4, show_default=True,
              help="Requests in flight with --server (in process, samples run one at a time).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=120, show_default=True,
              help="Seconds to wait for one answer with --server.")
@click.option("--retries", type=click.IntRange(min=0, max=10), default=3, show_default=True,
              help="Retries of a 503 (loading or overloaded) with --server, waiting as Retry-After says.")
@click.option("--api-key", default=None, help="X-API-Key for a server that requires one.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@with_appcontext
@click.pass_context
def batch_command(ctx: click.Context, input_path, output_dir, preset, start_idx, end_idx, resume_dir, server,
                  concurrency, timeout_s, retries, api_key, progress):
    """Run a JSONL dataset through Guidepost and write results.jsonl, summary.json and image copies.

    Each sample gets exactly what POST /process would answer (same pipeline, limits and errors).
    A failing sample is recorded with its error and the run goes on. Results are flushed per
    sample: after a crash or kill, --resume DIR continues with no sample lost or repeated.
    """
    options = {"input": input_path, "start_idx": start_idx, "end_idx": end_idx, "preset": preset,
               "server": server, "concurrency": concurrency}
    if resume_dir:
        summary = _resumable(resume_dir)
        options = _merge_stored(ctx, options, summary["settings"])
    elif input_path is None:
        raise click.UsageError("give --input (a JSONL dataset), or --resume DIR to continue a run")
    else:
        options["input"] = str(input_path.resolve())
    if options["end_idx"] is not None and options["end_idx"] <= options["start_idx"]:
        raise click.BadParameter("must be greater than --start-idx", param_hint="--end-idx")
    if not options["server"]:
        options["concurrency"] = None  # in process, samples run one at a time

    samples = read_samples(Path(options["input"]), options["start_idx"], options["end_idx"])
    answerer = _answerer(options, timeout_s, retries, api_key)  # before the folder: a failed load leaves none
    folder = resume_dir or new_run_folder(output_dir)
    if not resume_dir:
        summary = {"status": "running", "run_dir": str(folder.resolve()), "settings": options, "runs": []}
    run = {"started_at": _now(), "status": "running"}
    summary.update(status="running", settings=options)
    summary["runs"].append(run)
    write_summary(folder, summary)
    click.echo(f"batch: {len(samples)} samples → {folder}", err=True)

    try:
        answered, seconds = run_samples(samples, answerer, folder, progress=progress)
        run.update(status="finished", answered=answered, wall_s=round(seconds, 2),
                   samples_per_s=round(answered / seconds, 3) if seconds else None)
    except KeyboardInterrupt:
        run["status"] = "interrupted"
        raise
    finally:
        run["finished_at"] = _now()
        summary.update(status=run["status"], **summarize(ResultsLog(folder / RESULTS).read(), len(samples)))
        write_summary(folder, summary)
    _report(summary, folder)


def _resumable(folder: Path) -> dict:
    try:
        summary = read_summary(folder)
    except (FileNotFoundError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--resume") from None
    if "settings" not in summary:
        raise click.BadParameter(f"{folder}/summary.json has no settings to resume with", param_hint="--resume")
    return summary


def _merge_stored(ctx: click.Context, given: dict, stored: dict) -> dict:
    """The stored settings, checked against any option given explicitly on this command line."""
    for name in _STORED:
        source = ctx.get_parameter_source("input_path" if name == "input" else name)
        value = str(given[name].resolve()) if name == "input" and given[name] else given[name]
        if source == ParameterSource.COMMANDLINE and value != stored.get(name):
            raise click.UsageError(f"--{name.replace('_', '-')} {value} differs from the run being resumed "
                                   f"({stored.get(name)}); omit it to continue that run")
    return {name: stored.get(name) for name in _STORED}


def _answerer(options: dict, timeout_s: float, retries: int, api_key: str | None):
    if options["server"]:
        answerer = HttpAnswerer(options["server"], concurrency=options["concurrency"], timeout_s=timeout_s,
                                retries=retries, api_key=api_key)
        try:
            answerer.wait_ready(timeout_s)
        except ConnectionError as exc:
            raise click.ClickException(str(exc)) from None
        return answerer
    ext: Guidepost = current_app.extensions["guidepost"]
    if options["preset"] and options["preset"] != ext.preset.name:
        try:
            ext = Guidepost(ext.settings.model_copy(update={"preset": options["preset"]}))
        except (ValueError, OSError) as exc:
            raise click.BadParameter(str(exc), param_hint="--preset") from None
    options["preset"] = ext.preset.name
    click.echo(f"batch: loading preset '{ext.preset.name}'…", err=True)
    started = time.perf_counter()
    try:
        ext.ensure_loaded()
    except ModelLoadError as exc:
        raise click.ClickException(f"preset '{ext.preset.name}' failed to load: {exc}") from None
    click.echo(f"batch: models ready in {time.perf_counter() - started:.1f} s", err=True)
    return LocalAnswerer(ext)


def _report(summary: dict, folder: Path) -> None:
    counts, timings = summary["counts"], summary["timings_ms"]
    click.echo(f"done: {counts['succeeded']} succeeded, {counts['failed']} failed "
               f"({', '.join(f'{code}: {n}' for code, n in summary['errors'].items()) or 'no errors'}), "
               f"{counts['fallback']} fallback, {counts['danger']} danger")
    if timings:
        click.echo(f"latency: mean {timings['mean']:.0f} ms, p50 {timings['p50']:.0f} ms, p95 {timings['p95']:.0f} ms")
    click.echo(f"results: {folder / RESULTS}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
