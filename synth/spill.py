"""Where DuckDB's memory ends and where it spills past that: a budget and a private folder per process.

Validation and preparation hold the data being checked (about 1-1.6 GiB per million claims); without a
folder to spill to, an in-memory database fails or the OS kills the process when the data outgrows memory.
Every connection synthmed opens gets ``memory_limit`` (``SYNTHMED_MEMORY_LIMIT``, default half the machine's
memory: the rest is for Python, pandas and the models) and a ``temp_directory`` of its own inside one folder
per process, created 0700 under ``SYNTHMED_TEMP_DIR`` (default: the system's temporary folder) and removed
when the process exits. A process killed before it could remove its folder (SIGTERM from a scheduler or a
timeout, SIGKILL, a crash) leaves it behind, spilled real rows and all (47 GB after ten minutes of validating
100M claims); the folder's name carries its process id, and the next synthmed process to open a connection
removes this user's folders whose process is gone. Spilled blocks are the data being checked, real records
included: put ``SYNTHMED_TEMP_DIR`` on a disk as protected as the data folder itself.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path

from synth.errors import SpillConfigError

MEMORY_ENV = "SYNTHMED_MEMORY_LIMIT"
TEMP_ENV = "SYNTHMED_TEMP_DIR"
_SIZE = re.compile(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)
_root: Path | None = None
PREFIX = "synthmed-duckdb-"
_OWNED = re.compile(rf"{PREFIX}(\d+)-[A-Za-z0-9_]+")  # synthmed-duckdb-<pid>-<mkdtemp suffix>


def memory_limit() -> str:
    """DuckDB's ``memory_limit``: ``SYNTHMED_MEMORY_LIMIT`` (e.g. ``8GB``) or half the physical memory."""
    raw = os.environ.get(MEMORY_ENV, "").strip()
    if raw:
        if not _SIZE.fullmatch(raw):
            raise SpillConfigError(f"The '{MEMORY_ENV}' setting must be a size such as 8GB or 500MB; got {raw!r} instead.")
        return raw
    return f"{max(half_memory_mib(), 256)}MiB"  # whole MiB (DuckDB reads MB as 10**6 bytes)


def half_memory_mib() -> int:
    """Half the machine's physical memory in whole MiB: the default budget of either engine."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2 // 2**20


_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def memory_limit_bytes() -> int:
    """``memory_limit()`` in bytes (the same units DuckDB reads: KB = 1000 bytes, KiB = 1024)."""
    text = memory_limit().strip().lower()
    number = text.rstrip("kmgtib ")
    return int(float(number) * _UNITS[text[len(number):].strip()])


def temp_directory() -> str:
    """A fresh folder for one connection's spill files, inside this process's private folder."""
    return tempfile.mkdtemp(prefix="con-", dir=_process_root())


def settings() -> dict[str, str]:
    """The two settings every synthmed connection gets (``synth.load.connect``)."""
    return {"memory_limit": memory_limit(), "temp_directory": temp_directory()}


def _process_root() -> Path:
    global _root
    if _root is None or not _root.is_dir():
        base = os.environ.get(TEMP_ENV, "").strip() or None
        if base is not None and not Path(base).is_dir():
            raise SpillConfigError(f"The '{TEMP_ENV}' setting must name an existing folder; {base!r} is not one.")
        _root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))  # 0700: this user only
        atexit.register(shutil.rmtree, _root, True)
        reap_orphans(_root.parent)
    return _root


def reap_orphans(base: Path) -> list[Path]:
    """Remove this user's spill folders under ``base`` whose process no longer runs; the folders removed.

    A folder is left alone when its name carries no process id, when another user owns it, or when a process
    with that id runs (a reused id only delays the removal to a later run)."""
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for folder in entries:
        match = _OWNED.fullmatch(folder.name)
        if match is None or folder == _root:
            continue
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        if _alive(int(match.group(1))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True
