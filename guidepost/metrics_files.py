"""The folder gunicorn's workers share their metrics through (prometheus_client's multiprocess mode).

Called from gunicorn.conf.py's hooks in the master: prepare() before any worker starts, worker_exited() as each
one exits, remove() at shutdown. prometheus_client chooses its mode when first imported, so the master must not
import it before prepare() has set PROMETHEUS_MULTIPROC_DIR (workers inherit the variable and import it after fork).
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class MetricsFolder:
    """Where the workers write; `temporary` when the master made it (and removes it at exit)."""

    path: Path
    temporary: bool


def prepare(enabled: bool) -> MetricsFolder | None:
    """Set PROMETHEUS_MULTIPROC_DIR to an empty folder (the operator's, emptied, or a new temporary one)."""
    if not enabled:
        return None
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported in the gunicorn master before its metrics folder was set: "
                           "workers would count apart. Import it only inside workers.")
    given = os.environ.get(VARIABLE)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # values of a previous run would be added to this one's
            stale.unlink()
    else:
        folder = Path(tempfile.mkdtemp(prefix="guidepost-metrics-"))
        os.environ[VARIABLE] = str(folder)
    log.info("metrics of all workers are shared through %s", folder)
    return MetricsFolder(folder, temporary=not given)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (in flight, ready, load time); its counters and histograms stay counted."""
    if os.environ.get(VARIABLE):
        from prometheus_client import multiprocess  # the variable is set by now: the import sees multiprocess mode

        multiprocess.mark_process_dead(pid)


def remove(folder: MetricsFolder | None) -> None:
    """Delete the temporary folder prepare() made (an operator's own folder is left alone)."""
    if folder is not None and folder.temporary:
        shutil.rmtree(folder.path, ignore_errors=True)
