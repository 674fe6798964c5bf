"""`convert`'s progress: timestamped lines on stdout (when verbose) and, always, into the bundle's convert.log."""

from __future__ import annotations

import time


class ProgressLog:
    """Progress to stdout (when verbose) and into the bundle's convert.log (always)."""

    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.lines: list[str] = []
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        line = f"[{time.perf_counter() - self.t0:6.1f}s] {msg}"
        self.lines.append(line)
        if self.verbose:
            print(line, flush=True)

    def detail(self, msg: str) -> None:
        self.lines.append(msg)
