"""The buffering front: an nginx that the gunicorn master starts, watches and stops, in front of a private socket."""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2

# Where the master keeps its run folder across a HUP (gunicorn re-reads gunicorn.conf.py then; the socket must not move).
RUN_DIR_ENV = "_GUIDEPOST_FRONT_RUN_DIR"
_TEMPLATE = Path(__file__).with_name("nginx.conf.j2")
_PR_SET_PDEATHSIG = 1


class FrontError(RuntimeError):
    """The front cannot start; the message says how to fix it (gunicorn prints it and exits 1)."""


@dataclass(frozen=True)
class Refusal:
    """One refusal nginx answers itself, in the API's error shape."""

    nginx_status: int
    status: int
    code: str
    message: str
    retry_after: int | None = None
    allow: str | None = None  # the Allow header a 405 must carry (RFC 9110)


def _refusals(body_too_large: str) -> list[Refusal]:
    # 494 is nginx's own code for a header too large; it is sent as 431. A client that stalls longer than the
    # timeout is disconnected without an answer (nginx sends none). Messages hold no quote or '$'.
    return [
        Refusal(400, 400, "bad_request", "Malformed HTTP request."),
        Refusal(494, 431, "request_header_fields_too_large",
                    "A request header is too large (at most 8 KB each, 32 KB in all)."),
        Refusal(414, 414, "uri_too_long", "The request line is too long (at most 8 KB)."),
        Refusal(413, 413, "payload_too_large", body_too_large),
        Refusal(429, 429, "too_many_connections",
                    "Too many requests in progress from this address; retry shortly.", retry_after=1),
        Refusal(502, 503, "unavailable", "The server is starting, restarting or stopping; retry shortly.",
                    retry_after=5),
        Refusal(504, 504, "gateway_timeout", "The server took too long to answer; retry."),
        # nginx refuses TRACE before any location: it names the methods the API uses anywhere.
        Refusal(405, 405, "method_not_allowed", "The method is not allowed (TRACE never is).",
                allow="GET, HEAD, POST, OPTIONS"),
    ]


def find_nginx() -> str:
    """The nginx binary on PATH or in /usr/sbin; FrontError saying how to get one."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)),
                                          None)
    if not found:
        raise FrontError("GUIDEPOST_FRONT is on but nginx is not installed: install it (Debian/Ubuntu: "
                         "apt-get install nginx; `make serve` does this when run as root), or set GUIDEPOST_FRONT=off "
                         "when a buffering proxy or load balancer already stands in front of this server.")
    return found


def run_dir() -> Path:
    """This master's private folder (socket, nginx config, temp files): named once, kept across reloads (HUP)."""
    # Tagged with the pid: a gunicorn started by a process that loaded this configuration must not share its folder.
    pid, _, existing = os.environ.get(RUN_DIR_ENV, "").partition(":")
    if existing and pid == str(os.getpid()):
        return Path(existing)
    path = Path(tempfile.gettempdir()) / f"guidepost-front-{secrets.token_hex(8)}"
    os.environ[RUN_DIR_ENV] = f"{os.getpid()}:{path}"  # made by on_starting: loading this config leaves nothing behind
    return path


class NginxFront:
    """Renders nginx.conf for one server, starts nginx from the gunicorn master, drains and stops it with gunicorn."""

    def __init__(self, *, listen: str, max_body_bytes: int, body_too_large: str, per_ip: int,
                 graceful_timeout_s: float, timeout_s: int = 10, keepalive_s: int = 5, connections: int = 4096,
                 read_timeout_s: int = 300, log_level: str = "warn", folder: Path | None = None):
        self.folder = folder or run_dir()
        self.socket = self.folder / "gunicorn.sock"
        self.listen = _nginx_listen(listen)
        self.graceful_timeout_s = graceful_timeout_s
        self.values = {"run_dir": str(self.folder), "listen": self.listen, "upstream": str(self.socket),
                       "max_body_bytes": max_body_bytes, "per_ip": per_ip, "timeout_s": timeout_s,
                       "keepalive_s": keepalive_s, "connections": connections, "read_timeout_s": read_timeout_s,
                       "log_level": log_level, "backlog": 2048, "shutdown_s": max(1, int(graceful_timeout_s) - 5),
                       "errors": [_escaped(e) for e in _refusals(body_too_large)]}
        self.proc: subprocess.Popen | None = None
        self._stopping = False
        self.failed = False  # nginx died under a running server: the master exits 1 so a supervisor restarts it

    @classmethod
    def for_settings(cls, settings, *, listen: str, graceful_timeout_s: float,
                     folder: Path | None = None) -> "NginxFront":
        """The front for a server's Settings: its body limit and message, its per-address bound, its log level."""
        return cls(listen=listen, max_body_bytes=settings.max_body_bytes, body_too_large=settings.body_too_large_message,
                   per_ip=settings.front_max_per_ip, graceful_timeout_s=graceful_timeout_s,
                   log_level="info" if settings.log_level == "DEBUG" else "warn", folder=folder)

    @property
    def bind(self) -> str:
        """What gunicorn binds: the private unix socket only nginx talks to."""
        return f"unix:{self.socket}"

    @property
    def config_path(self) -> Path:
        return self.folder / "nginx.conf"

    def render(self) -> str:
        """The nginx configuration text."""
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                 keep_trailing_newline=True, autoescape=False)
        return env.from_string(_TEMPLATE.read_text(encoding="utf-8")).render(**self.values)

    def write_config(self, nginx: str) -> None:
        """Write nginx.conf and have nginx check it; FrontError with nginx's words when it is wrong."""
        (self.folder / "tmp").mkdir(exist_ok=True)
        self.config_path.write_text(self.render(), encoding="utf-8")
        check = subprocess.run(self._command(nginx) + ["-t", "-q"], capture_output=True, text=True, timeout=30)
        if check.returncode:
            raise FrontError(f"nginx refused its configuration {self.config_path}: {check.stderr.strip()}")

    def _command(self, nginx: str) -> list[str]:
        return [nginx, "-p", str(self.folder), "-e", "stderr", "-c", str(self.config_path)]

    # gunicorn server hooks (gunicorn.conf.py binds them): they run in the master process.

    def on_starting(self, server) -> None:
        """Make the run folder before gunicorn binds its socket in it; check that nginx exists."""
        find_nginx()
        try:
            self.folder.mkdir(mode=0o700)
        except FileExistsError:
            raise FrontError(f"{self.folder} already exists; start again (another process made it)") from None
        # 0711: an nginx started as root runs its worker as nobody, which must reach the socket but not list it.
        self.folder.chmod(0o711)

    def when_ready(self, server) -> None:
        """Start nginx once gunicorn listens on its socket; wait until nginx has bound the public address."""
        nginx = find_nginx()
        self.write_config(nginx)
        pid_file = self.folder / "nginx.pid"
        pid_file.unlink(missing_ok=True)
        # Its own session: Ctrl-C or a signal to gunicorn's process group reaches gunicorn, which stops nginx in order.
        self.proc = subprocess.Popen(self._command(nginx), preexec_fn=_die_with_parent, start_new_session=True)
        deadline = time.monotonic() + 30
        while not pid_file.exists():  # nginx writes its pid file once its sockets are bound
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise FrontError(f"nginx could not start on {self.listen} (its error is above); is the port in use?")
            time.sleep(0.05)
        server.log.info("front: nginx %s (pid %s) on %s, gunicorn on %s", nginx, self.proc.pid, self.listen, self.bind)
        _graceful_stop_first(server, self)
        threading.Thread(target=self._watch, args=(server,), name="guidepost-front-watch", daemon=True).start()

    def on_reload(self, server) -> None:
        """HUP: render the configuration again and let nginx reload it."""
        if self.proc and self.proc.poll() is None:
            self.write_config(find_nginx())
            self.proc.send_signal(signal.SIGHUP)

    def on_exit(self, server) -> None:
        """The master is exiting: stop nginx if it still runs, remove the run folder; exit 1 if nginx had died."""
        self.stop(graceful=False)
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.failed:
            raise SystemExit(1)

    def stop(self, graceful: bool = True) -> None:
        """Graceful: nginx stops accepting and finishes the requests it holds (gunicorn still serving them)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self._stopping = True
        self.proc.send_signal(signal.SIGQUIT if graceful else signal.SIGTERM)
        try:
            self.proc.wait(self.graceful_timeout_s if graceful else 10)  # nginx gives up at shutdown_s
        except subprocess.TimeoutExpired:
            self._kill()

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _watch(self, server) -> None:
        # The master reaps any child (waitpid(-1)), so the exit status may be lost: only that nginx is gone counts.
        while self.proc.poll() is None:
            time.sleep(0.5)
        if not self._stopping:
            self.failed = True
            server.log.error("front: nginx exited unexpectedly; stopping gunicorn so that a supervisor restarts both")
            os.kill(os.getpid(), signal.SIGTERM)


def _graceful_stop_first(server, front: NginxFront) -> None:
    """Make the arbiter drain nginx before it stops its workers, so requests nginx holds still reach a worker."""
    stop_workers = server.stop

    def stop(graceful: bool = True) -> None:
        front.stop(graceful)
        stop_workers(graceful)

    server.stop = stop


def _die_with_parent() -> None:
    """nginx gets SIGTERM when the gunicorn master dies, even by SIGKILL (runs in the child before exec)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _nginx_listen(bind: str) -> str:
    """A gunicorn bind (HOST:PORT, [V6]:PORT, unix:PATH) as nginx's listen argument; FrontError for others."""
    if bind.startswith("unix:"):
        return bind
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise FrontError(f"GUIDEPOST_BIND='{bind}' is not HOST:PORT or unix:PATH, which the front can listen on")
    return f"{host or '0.0.0.0'}:{port}"


def _escaped(error: Refusal) -> dict:
    """An error's fields ready for a single-quoted nginx string (JSON-escaped, no quote or variable sign)."""
    message = json.dumps(error.message, ensure_ascii=True)[1:-1]
    if "'" in message or "$" in message:
        raise ValueError(f"front error message may not hold ' or $: {error.message}")
    return {**vars(error), "message": message}
