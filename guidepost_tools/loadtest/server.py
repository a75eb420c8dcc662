"""A local gunicorn of this project on 127.0.0.1 (started, waited for on every worker, stopped), and its RSS."""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from guidepost.config import PROJECT_ROOT

from ..http_client import wait_ready


class ServerFailed(RuntimeError):
    """The server exited or did not become ready; the message ends with its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """`gunicorn -c gunicorn.conf.py wsgi:app` with extra GUIDEPOST_* variables, on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path, *, ready_timeout_s: float = 180, root: Path | None = None):
        self.env = {**os.environ, **env}
        self.env["GUIDEPOST_BIND"] = f"127.0.0.1:{free_port()}"  # never exposed beyond this machine
        self.workers = int(self.env.get("GUIDEPOST_WORKERS", "1"))
        self.url = f"http://{self.env['GUIDEPOST_BIND']}"
        self.log_path = Path(log_path)
        self.ready_timeout_s = ready_timeout_s
        self.root = Path(root or PROJECT_ROOT)  # another checkout: compare its code with this one's in one run
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "LocalServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Start gunicorn and wait until every worker has said ready; ServerFailed (after stopping it) if not."""
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=self.root,
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        try:
            wait_ready(self.url, self.ready_timeout_s, workers=self.workers, alive=lambda: self.proc.poll() is None)
        except ConnectionError as exc:
            raise ServerFailed(f"gunicorn at {self.url} did not become ready ({exc}):\n{self.log_tail()}") from None

    def stop(self, timeout_s: float = 40) -> int | None:
        """SIGTERM (never SIGKILL first: the workers would be orphaned), then reap; the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def local_server_pid(url: str) -> int | None:
    """The gunicorn master serving a loopback URL (above whatever listens: a worker, or the front's nginx), or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        # A socket shared by several processes (a master and its workers) is listed under one of them only.
        listening = [c.pid for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid]
    except psutil.AccessDenied:  # other users' sockets are hidden from an unprivileged benchmark
        return None
    for pid in listening:
        try:
            return server_root(psutil.Process(pid)).pid
        except psutil.NoSuchProcess:
            continue
    return None


def server_root(process: psutil.Process) -> psutil.Process:
    """The outermost gunicorn process above (or at) a listening process; the process itself when none is."""
    root = process
    for candidate in [process, *process.parents()]:
        try:
            if is_gunicorn(candidate.cmdline()):
                root = candidate
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return root


def is_gunicorn(cmdline: list[str]) -> bool:
    """Whether a command line runs gunicorn (a master or a worker), not the front's nginx or a wrapper."""
    # `gunicorn …`, `python …/bin/gunicorn …` or `python -m gunicorn …`; not `timeout 60 gunicorn …` or a shell.
    head = [os.path.basename(arg) for arg in cmdline[:3]]
    if head[:1] == ["gunicorn"]:
        return True
    return bool(head) and head[0].startswith("python") and (head[1:2] == ["gunicorn"] or head[1:3] == ["-m", "gunicorn"])


def tree_rss(pid: int) -> tuple[int, dict[int, int]] | None:
    """Resident memory of a process and all its descendants in bytes, and of each gunicorn worker among them (by pid);
    None once it is gone."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    total, workers = 0, {}
    for process in processes:
        try:
            rss = process.memory_info().rss
            total += rss
            if process.ppid() == pid and is_gunicorn(process.cmdline()):
                workers[process.pid] = rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):  # a worker restarting between listing and reading
            pass
    return total, workers


class RssSampler:
    """Samples tree_rss(pid) every `interval_s` in a daemon thread while it is running (a context manager)."""

    def __init__(self, pid: int, t0: float, interval_s: float = 0.5):
        self.pid, self.t0, self.interval_s = pid, t0, interval_s
        self.samples: list[tuple[float, int]] = []  # (seconds since t0, bytes of the whole tree)
        self.workers: list[tuple[float, dict[int, int]]] = []  # (seconds since t0, {worker pid: bytes})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            sample = tree_rss(self.pid)
            if sample is not None:
                t = round(time.perf_counter() - self.t0, 3)
                self.samples.append((t, sample[0]))
                self.workers.append((t, sample[1]))
            if self._stop.wait(self.interval_s):
                return
