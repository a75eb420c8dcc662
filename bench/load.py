"""Serving benchmark: latency, throughput and overload of a running Guidepost server, with plots.

Targets a server by URL (a local gunicorn or a rented box), or starts local gunicorn configurations itself on
127.0.0.1 one after the other and prints their ratios (absolute times drift on shared machines):

    .venv/bin/python bench/load.py --url http://127.0.0.1:5000 --requests 100 --concurrency 1
    .venv/bin/python bench/load.py --url http://127.0.0.1:5000 --mode sweep --levels 1,2,4,8,16
    .venv/bin/python bench/load.py --url http://127.0.0.1:5000 --mode soak --duration 300 --concurrency 4
    GUIDEPOST_PRESET=tiny .venv/bin/python bench/load.py --mode sweep \\
        --start GUIDEPOST_WORKERS=1 --start GUIDEPOST_WORKERS=2

Sends real photographs (the files given with --image, else scikit-image's sample photos at 640x480) as
multipart or JSON, with or without client objects. Writes bench/results/<name>.json and PNGs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guidepost.files import atomic_write  # noqa: E402
from guidepost_tools.loadtest import plots  # noqa: E402
from guidepost_tools.loadtest.payloads import build_payloads, default_photos, photo_files  # noqa: E402
from guidepost_tools.loadtest.report import OVERHEADS, VERDICT_MS, compare  # noqa: E402
from guidepost_tools.loadtest.runner import Level  # noqa: E402
from guidepost_tools.loadtest.targets import Target, measure  # noqa: E402
from guidepost_tools.loadtest.server import ServerFailed  # noqa: E402


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option; the examples kept as written."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=_HelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    target = parser.add_argument_group("targets (the first is the baseline of the ratios)")
    target.add_argument("--url", action="append", default=[], help="a running server, e.g. http://127.0.0.1:5000")
    target.add_argument("--start", action="append", default=[], metavar="'NAME=VALUE ...'",
                        help="start a local gunicorn with these variables (on top of this environment) on "
                             "127.0.0.1, measure it, stop it; repeat to compare configurations")
    load = parser.add_argument_group("load")
    load.add_argument("--mode", choices=("fixed", "sweep", "soak"), default="fixed",
                      help="fixed: --requests at --concurrency; sweep: --requests at each of --levels; "
                           "soak: --concurrency for --duration seconds")
    load.add_argument("--requests", type=int, default=None,
                      help="requests per level (fixed and sweep: 100); a soak's safety cap (100000)")
    load.add_argument("--concurrency", type=int, default=1, help="concurrent clients (fixed, soak)")
    load.add_argument("--levels", default="1,2,4,8,16", help="comma-separated concurrency levels (sweep)")
    load.add_argument("--duration", type=float, default=60, help="seconds (soak)")
    load.add_argument("--max-seconds", type=float, default=600, help="time bound of each level (fixed, sweep)")
    load.add_argument("--warmup", type=int, default=4, help="unmeasured requests before measuring each target")
    body = parser.add_argument_group("requests")
    body.add_argument("--image", action="append", type=Path, default=[],
                      help="image file to send (repeat; in turn); default: scikit-image's photos")
    body.add_argument("--size", default="640x480", help="size of the default photos, WxH (JPEG, quality 90)")
    body.add_argument("--format", choices=("multipart", "json"), default="multipart", help="request body format")
    body.add_argument("--objects", default=None, help="comma-separated client objects (the server skips CLIP)")
    body.add_argument("--text", default=None, help="the user's question")
    body.add_argument("--api-key", default=None, help="sent as X-API-Key")
    body.add_argument("--stream", action="store_true",
                      help="ask for Server-Sent Events (Accept: text/event-stream) and time the hazard event as well "
                           "as the whole answer; a server without streaming answers JSON, timed as one event")
    body.add_argument("--new-connections", action="store_true",
                      help="one TCP connection per request (Connection: close), like a phone that reconnects for "
                           "each photo; by default each client keeps its connection alive")
    body.add_argument("--timeout-s", type=float, default=60, help="client timeout per request")
    body.add_argument("--max-backoff-s", type=float, default=1.0,
                      help="after a 503 a client waits Retry-After, at most this long, before its next request")
    out = parser.add_argument_group("report")
    out.add_argument("--sla-ms", type=float, default=1500, help="latency threshold of the SLA share")
    out.add_argument("--output-dir", type=Path, default=ROOT / "bench" / "results", help="where the report goes")
    out.add_argument("--name", default=None, help="file name stem; default load-<date>-<mode>")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not args.url and not args.start:
        parser.error("give a server with --url, or configurations to start with --start")
    if args.mode == "sweep":
        args.level_list = sorted({int(level) for level in args.levels.split(",") if level.strip()})
    else:
        args.level_list = [args.concurrency]
    if min(args.level_list) < 1 or (args.requests is not None and args.requests < 1):
        parser.error("concurrency and --requests must be at least 1")
    width, x, height = args.size.partition("x")
    if not (x and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        parser.error(f"--size '{args.size}' is not WIDTHxHEIGHT, e.g. 640x480")
    args.size_wh = (int(width), int(height))
    try:
        args.targets = [Target(label=url, url=url) for url in args.url] + [Target.started(s) for s in args.start]
    except ValueError as exc:
        parser.error(str(exc))
    return args


def build_levels(args: argparse.Namespace) -> list[Level]:
    """Every phase of the run, each bounded in count and in time."""
    if args.mode == "soak":
        return [Level(args.concurrency, args.requests or 100_000, args.duration, timed=True)]
    return [Level(c, args.requests or 100, args.max_seconds) for c in args.level_list]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    photos = photo_files(args.image) if args.image else default_photos(args.size_wh)
    objects = [o.strip() for o in args.objects.split(",") if o.strip()] if args.objects else None
    payloads = build_payloads(photos, args.format, objects, args.text)
    levels = build_levels(args)
    client = {"timeout_s": args.timeout_s, "max_backoff_s": args.max_backoff_s, "api_key": args.api_key,
              "new_connections": args.new_connections, "progress": not args.no_progress, "stream": args.stream}

    results = []
    for target in args.targets:
        print(f"== {target.label}", flush=True)
        try:
            result = measure(target, levels, payloads, sla_ms=args.sla_ms, warmup=args.warmup, client=client)
        except (ServerFailed, ConnectionError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print_levels(result)
        results.append(result)

    comparison = compare(results)
    if comparison:
        print_ratios(comparison)
    date = dt.date.today().isoformat()
    stem = args.output_dir / (args.name or f"load-{date}-{args.mode}")
    report = {
        "command": "python bench/load.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": date,
        "client_machine": {"cpus": len(os.sched_getaffinity(0)), "machine": platform.machine(),
                           "processor": platform.processor() or None, "python": platform.python_version()},
        "settings": {"mode": args.mode, "levels": [vars(level) for level in levels], "sla_ms": args.sla_ms,
                     "format": args.format, "objects": objects, "text": args.text, "warmup": args.warmup,
                     "timeout_s": args.timeout_s, "max_backoff_s": args.max_backoff_s,
                     "new_connections": args.new_connections, "stream": args.stream,
                     "photos": [{"name": p.name, "bytes": len(p.data)} for p in photos]},
        "definitions": {"throughput_rps": "answers (200) per second of the level's wall time",
                        "sla.share_within": "share of all requests answered (200) within the threshold",
                        "latency_ms": "client-side latency of answered requests",
                        "first_event_ms": "client-side time to the first speakable event of answered requests: the "
                                          "hazard event of a streamed answer, else the whole answer",
                        "verdict.share_within": f"share of all requests answered (200) whose first event arrived "
                                                f"within {VERDICT_MS} ms",
                        **OVERHEADS},
        "targets": results,
        "comparison": comparison,
    }
    write_report(report, stem, args.sla_ms)
    return 0


def write_report(report: dict, stem: Path, sla_ms: float) -> None:
    """<stem>.json (the summaries, committed), <stem>.records.jsonl.gz (every request, git-ignored) and the PNGs."""
    targets = report["targets"]
    png = {suffix: stem.with_name(f"{stem.name}-{suffix}.png")
           for suffix in ("latency", "levels", "first-event", "stages", "rss")}
    plots.plot_latency_over_time(targets, sla_ms, png["latency"])
    plots.plot_levels(targets, png["levels"])
    plots.plot_first_event(targets, png["first-event"])
    plots.plot_stages(targets, png["stages"])
    if any(target["rss"] for target in targets):  # remote servers only: no memory to show
        plots.plot_rss(targets, png["rss"])
    json_path, records_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".records.jsonl.gz")
    write_records(records_path, targets)
    summary = {**report, "records": f"{records_path.name} (one JSON line per request, not committed)",
               "targets": [{key: value for key, value in target.items() if key != "records"} for target in targets]}
    atomic_write(json_path, json.dumps(summary, indent=1, ensure_ascii=False))
    print("wrote " + ", ".join(str(path) for path in [json_path, records_path, *png.values()] if path.exists()))


def write_records(path: Path, targets: list[dict]) -> None:
    """Every request's record, one JSON line each with its target's label, gzipped."""
    def write(tmp: Path) -> None:
        with gzip.open(tmp, "wt", encoding="utf-8") as handle:
            for target in targets:
                for record in target["records"]:
                    handle.write(json.dumps({"target": target["label"], **record}, ensure_ascii=False) + "\n")
    atomic_write(path, write)


def print_levels(result: dict) -> None:
    """One line per level: counts, throughput, latency percentiles, SLA share and the overhead medians."""
    print(f"{'c':>3} {'reqs':>5} {'200':>5} {'503':>5} {'other':>5} {'ans/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'SLA':>5} {'1st p50':>8} {'1st p95':>8} {'verdict':>7} {'outside models p50':>19}")
    for level in result["levels"]:
        statuses = level["statuses"]
        other = level["requests"] - statuses.get("200", 0) - statuses.get("503", 0)
        latency = level["latency_ms"] or {}
        overhead = level["overhead_ms"]
        print(f"{level['concurrency']:>3} {level['requests']:>5} {statuses.get('200', 0):>5} "
              f"{statuses.get('503', 0):>5} {other:>5} {level['throughput_rps']:>7.2f} "
              f"{_ms(latency.get('p50'))} {_ms(latency.get('p95'))} {_ms(latency.get('p99'))} "
              f"{_share(level['sla']['share_within'])} {_ms((level['first_event_ms'] or {}).get('p50'))} "
              f"{_ms((level['first_event_ms'] or {}).get('p95'))} {_share(level['verdict']['share_within'], 7)} "
              f"{_ms((overhead['outside_models'] or {}).get('p50'), 19)}")
    if result["rss"]:
        rss = result["rss"]
        growth = rss["after_warmup"]
        workers = ", ".join(f"{w['growth']:+.1%}" for w in growth["workers"].values())
        print(f"server RSS: start {rss['start_mib']} MiB, peak {rss['peak_mib']} MiB, end {rss['end_mib']} MiB; after "
              f"{growth['warmup']}: {growth['growth']:+.1%} (workers: {workers or '-'})")


def print_ratios(comparison: dict) -> None:
    """Each target over the baseline, level by level."""
    print(f"== ratios over the baseline '{comparison['baseline']}'")
    print(f"{'target':<40} {'c':>3} {'throughput':>10} {'p50':>6} {'p95':>6} {'SLA':>6} {'1st p50':>8} {'verdict':>8}")
    for row in comparison["ratios"]:
        print(f"{row['target'][:40]:<40} {row['concurrency']:>3} {_x(row['throughput'], 10)} "
              f"{_x(row['latency_p50'], 6)} {_x(row['latency_p95'], 6)} {_x(row['sla_share'], 6)} "
              f"{_x(row['first_event_p50'], 8)} {_x(row['verdict_share'], 8)}")


def _ms(value, width: int = 8) -> str:
    return f"{value:>{width}.1f}" if value is not None else f"{'-':>{width}}"


def _share(value, width: int = 5) -> str:
    return f"{value:>{width}.0%}" if value is not None else f"{'-':>{width}}"


def _x(value, width: int) -> str:
    return f"{value:>{width - 1}.2f}x" if value is not None else f"{'-':>{width}}"


if __name__ == "__main__":
    sys.exit(main())
