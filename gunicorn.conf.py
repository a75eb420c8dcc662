"""gunicorn settings for Guidepost; every value comes from a GUIDEPOST_* variable (see guidepost/config.py)."""
import os

from guidepost import metrics_files
from guidepost.config import load_settings
from guidepost.front import NginxFront

_settings = load_settings()  # fails fast, before any worker starts, on a bad GUIDEPOST_* value

_public = _settings.bind or f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = _settings.workers
# Threads let /healthz, /readyz and 503s answer while a generation runs; the VLM itself is serialised.
worker_class = "gthread"
threads = _settings.threads
# Never load the app in the master: forking after torch ran a multi-threaded op hangs the child.
preload_app = False
# gthread workers beat from their main loop while request threads run, so this only catches a hung worker.
timeout = 120
# Off by default: a restarting worker reloads its models for seconds, which one worker alone cannot afford.
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests // 10  # workers started together do not all restart together
graceful_timeout = 30
keepalive = 5

_front = None
if _settings.front:
    # gthread reads headers and bodies in its request threads with no time limit: 8 clients sending a byte a
    # second would hold every thread. nginx (started, watched and stopped by this master) reads each whole request
    # first, with time and size limits, and hands gunicorn only complete ones on a private socket.
    _front = NginxFront.for_settings(_settings, listen=_public, graceful_timeout_s=graceful_timeout)
    bind = _front.bind
    # nginx already bounds the request line and headers (8 KB each, 32 KB in all): gunicorn's tighter defaults
    # would only answer what nginx let through with a plain-text 400.
    limit_request_line, limit_request_field_size, limit_request_fields = 0, 0, 32768
else:
    bind = _public

# One log format for gunicorn and the app's own loggers (guidepost.*), in the master and every worker.
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": _FORMAT}, "access": {"format": "%(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
                 "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"}},
    "root": {"level": _settings.log_level, "handlers": ["console"]},
    "loggers": {"gunicorn.error": {"level": _settings.log_level, "handlers": ["console"], "propagate": False},
                "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False}},
}
loglevel = _settings.log_level.lower()

# Share the cores among workers: 2 workers x 2 torch threads on 2 cores was 2.5x slower than x 1.
if not _settings.torch_threads:
    # sched_getaffinity honours taskset/cgroup CPU sets, which os.cpu_count() ignores.
    os.environ["GUIDEPOST_TORCH_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // workers))


# Server hooks: each calls small functions, so that other start-up and shutdown steps compose here.
def on_starting(server):
    """Master, before any worker: the folder every worker writes its metrics to (GUIDEPOST_METRICS), the front."""
    server.guidepost_metrics = metrics_files.prepare(_settings.metrics)
    if _front:
        _front.on_starting(server)


def when_ready(server):
    """Master, once gunicorn listens: nginx starts in front of it."""
    if _front:
        _front.when_ready(server)


def on_reload(server):
    """Master, on SIGHUP: nginx reloads its configuration too."""
    if _front:
        _front.on_reload(server)


def child_exit(server, worker):
    """Master, after a worker exited: its live gauges (ready, in flight) leave /metrics."""
    metrics_files.worker_exited(worker.pid)


def on_exit(server):
    """Master, at shutdown: the temporary metrics folder goes, nginx stops (exit 1 if it had died)."""
    metrics_files.remove(getattr(server, "guidepost_metrics", None))
    if _front:
        _front.on_exit(server)
