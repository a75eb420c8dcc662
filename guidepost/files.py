"""Writing files and folders so that a crash or a concurrent worker never sees half of one."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock


def atomic_write(path: Path, content: str | bytes | Callable[[Path], None]) -> None:
    """Write text, bytes or whatever `content(tmp_path)` writes to path, replacing it in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        if callable(content):
            content(Path(tmp))
        else:
            Path(tmp).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(tmp, path)  # readers see the old file or the new one, never half
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_once(target: Path, build: Callable[[Path], None], done: Callable[[Path], bool]) -> bool:
    """Build the folder target unless done(target); True if built now.

    Processes starting together take a file lock, so one builds and the others wait and reuse its result; the
    build goes to a staging folder beside target that replaces it whole only when complete.
    """
    target = Path(target)
    if done(target):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        if done(target):  # another process built it while this one waited for the lock
            return False
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
        try:
            build(staging)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return True
