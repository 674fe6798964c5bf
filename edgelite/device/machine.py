"""What this device is, for the measurements that depend on it: the CPU's name, the cores this process may
use, and the thread counts worth trying (standard library only; `edgelite.bench.env` re-exports these).

    >>> default_threads(4), default_threads(2), default_threads(1)
    ([1, 2, 4], [1, 2], [1])
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel).read_text(errors="replace")
    except OSError:
        return None


def cpu_model(root: str | os.PathLike = "/") -> str:
    """The CPU name from /proc/cpuinfo ("model name", else the ARM part / hardware line), else platform's."""
    text = _read(Path(root), "proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip().lower(), v.strip())
    for key in ("model name", "hardware", "cpu model", "model"):
        if fields.get(key):
            return fields[key]
    if fields.get("cpu part"):
        return f"ARM part {fields['cpu part']}" + (f" ({fields['cpu implementer']})" if fields.get("cpu implementer") else "")
    return platform.processor() or platform.machine() or "unknown"


def cpu_cores() -> int:
    """Cores this process may run on (affinity), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(cores: int | None = None) -> list[int]:
    """1, 2, 4 up to the cores this process may use (a 4-core Pi: 1,2,4; a 2-core VM: 1,2)."""
    cores = cores or cpu_cores()
    return [t for t in (1, 2, 4) if t <= cores] or [1]
