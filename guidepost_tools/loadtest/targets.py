"""One server under test: reach it (or start it locally), warm it up, run every level, sample its RSS."""
from __future__ import annotations

import shlex
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import requests

from ..http_client import wait_ready
from .payloads import Payload
from .report import summarise_level
from .runner import Level, LoadRunner
from .server import LocalServer, RssSampler, local_server_pid


@dataclass(frozen=True)
class Target:
    """A running server's URL, or the environment of a gunicorn to start on 127.0.0.1."""

    label: str
    url: str | None = None
    env: dict[str, str] | None = None
    checkout: str | None = None  # run gunicorn from this checkout (an older commit, say) instead of this one

    @classmethod
    def started(cls, spec: str) -> "Target":
        """From 'GUIDEPOST_WORKERS=2 GUIDEPOST_MAX_IN_FLIGHT=0' (and CHECKOUT=<dir>): a local gunicorn to start."""
        env = {}
        for item in shlex.split(spec):
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise ValueError(f"'{item}' in --start '{spec}' is not NAME=VALUE")
            env[name] = value
        checkout = env.pop("CHECKOUT", None)
        if checkout and not (Path(checkout) / "gunicorn.conf.py").is_file():
            raise ValueError(f"CHECKOUT={checkout} in --start '{spec}' is not a Guidepost checkout")
        return cls(label=spec or "defaults", env=env, checkout=checkout)


def measure(target: Target, levels: list[Level], payloads: list[Payload], *, sla_ms: float, warmup: int,
            client: dict, ready_timeout_s: float = 180, rss_interval_s: float = 0.5) -> dict:
    """Run the levels in order against one target; its summary per level, every record and its RSS.

    `client` holds LoadRunner's options (timeout_s, max_backoff_s, api_key, new_connections, progress).
    """
    api_key = client.get("api_key")
    with tempfile.TemporaryDirectory(prefix="guidepost-load-") as tmp:
        server = LocalServer(target.env, Path(tmp) / "gunicorn.log", ready_timeout_s=ready_timeout_s,
                             root=target.checkout) if target.env is not None else None
        with server or nullcontext():
            url = server.url if server else target.url
            if server is None:  # a started server has already answered ready on every worker
                wait_ready(url, ready_timeout_s)
            runner = LoadRunner(url, payloads, **client)
            info = _server_info(url, api_key)
            if warmup:  # first requests pay for connections and lazy allocations: not measured
                runner.run(Level(concurrency=min(2, warmup), max_requests=warmup, max_seconds=ready_timeout_s),
                           time.perf_counter())
            pid = server.proc.pid if server else local_server_pid(url)
            t0 = time.perf_counter()
            summaries, records = [], []
            with RssSampler(pid, t0, rss_interval_s) if pid else nullcontext() as sampler:
                for level in levels:
                    level_records, wall = runner.run(level, t0)
                    summaries.append(summarise_level(level_records, wall, level.concurrency, sla_ms))
                    records += level_records
    return {"label": target.label, "url": url, "started_with": target.env, "server": info,
            "levels": summaries, "rss": _rss_report(pid, sampler, rss_interval_s), "records": records}


def _server_info(url: str, api_key: str | None) -> dict | None:
    """The parts of /info that say what was measured: preset, models, device, threads, limits, versions."""
    try:
        response = requests.get(f"{url.rstrip('/')}/info", headers={"X-API-Key": api_key} if api_key else {},
                                timeout=10)
        body = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError):
        body = None
    if not body:
        return None
    return {key: body.get(key) for key in ("preset", "model", "device", "dtype", "torch_threads", "limits",
                                           "versions")}


def _rss_report(pid: int | None, sampler: RssSampler | None, interval_s: float) -> dict | None:
    if not pid or not sampler or not sampler.samples:
        return None  # a remote server: its memory is not visible from here
    values = [rss for _, rss in sampler.samples]
    return {"pid": pid, "interval_s": interval_s, "what": "gunicorn master + workers (+ the nginx front when on)",
            "start_mib": _mib(values[0]), "peak_mib": _mib(max(values)), "end_mib": _mib(values[-1]),
            "after_warmup": growth_after_warmup(sampler), "samples": [[t, rss] for t, rss in sampler.samples],
            "workers": [[t, {str(worker): rss for worker, rss in rss_by_pid.items()}]
                        for t, rss_by_pid in sampler.workers]}


def growth_after_warmup(sampler: RssSampler, warmup_share: float = 0.25) -> dict:
    """RSS at the end over RSS once the first quarter of the run is over: the whole tree, and each worker."""
    end_t = sampler.samples[-1][0]
    cut = next(i for i, (t, _) in enumerate(sampler.samples) if t >= warmup_share * end_t)
    at, end = sampler.samples[cut][1], sampler.samples[-1][1]
    workers = {}
    for worker, rss in sampler.workers[cut][1].items():
        if worker in sampler.workers[-1][1]:  # the same process at both ends (not restarted meanwhile)
            last = sampler.workers[-1][1][worker]
            workers[str(worker)] = {"at_mib": _mib(rss), "end_mib": _mib(last), "growth": round(last / rss - 1, 4)}
    return {"warmup": f"the first {warmup_share:.0%} of the run", "warmup_s": sampler.samples[cut][0], "at_mib": _mib(at),
            "end_mib": _mib(end), "growth": round(end / at - 1, 4), "workers": workers}


def _mib(value: int) -> float:
    return round(value / 2**20, 1)
