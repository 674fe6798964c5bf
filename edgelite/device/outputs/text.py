"""Results as lines of text: a human-readable console line, and JSON lines (`--json FILE|-`)."""

from __future__ import annotations

import os
import sys
import time
from typing import IO

from edgelite.device.errors import RunError
from edgelite.device.frames import Frame
from edgelite.device.outputs.base import Output
from edgelite.device.pipeline import Result


def silence_stdout() -> None:
    """Point stdout at /dev/null so flushing at exit does not raise again on a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def format_line(result: Result) -> str:
    """`frame 12  red 0.98 | green 0.01  ·  123.4 fps  capture 0.31 pre 0.05 inf 0.30 post 0.02 ms`"""
    t = result.timings_ms
    labels = " | ".join(f"{p.label} {p.score:.2f}" for p in result.top_k) or "(below threshold)"
    mark = " *" if result.changed else ""
    return (f"frame {result.frame:>6}  {labels}{mark}  ·  {result.fps:6.1f} fps  capture {t['capture']:.2f} "
            f"pre {t['preprocess']:.2f} inf {t['inference']:.2f} post {t['postprocess']:.2f} ms")


class ConsoleOutput(Output):
    """One human-readable line per result, or every N results (a label change is marked with *)."""

    def __init__(self, stream: IO[str] | None = None, every: int = 1):
        self.stream = stream or sys.stdout
        self.every = max(1, every)

    def write(self, result: Result, frame: Frame) -> None:
        if result.frame % self.every == 0:
            self.stream.write(format_line(result) + "\n")
            self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class JsonLinesOutput(Output):
    """One JSON object per line (`Result.to_json()`, the JSON of `Result.to_dict()`). Lines are flushed
    at most every `flush_every` seconds (and whenever the loop waits for a frame, and at the end): a pipe
    reader sees every result within 20 ms — a 30 fps camera's lines one by one — without a write()
    system call, and a reader's wake-up, for every frame of a model running 1,000 frames a second."""

    FLUSH_EVERY = 0.02  # s

    def __init__(self, target: str | os.PathLike, flush_every: float = FLUSH_EVERY):
        self.target = str(target)
        self.flush_every = flush_every
        self._next_flush = 0.0  # the first line goes out at once
        if self.target == "-":
            self.stream, self._own = sys.stdout, False
        else:
            try:
                self.stream, self._own = open(self.target, "w", encoding="utf-8"), True
            except OSError as e:
                raise RunError(f"cannot write --json {self.target}: {e.strerror}") from None

    def write(self, result: Result, frame: Frame) -> None:
        self.stream.write(result.to_json() + "\n")
        now = time.monotonic()
        if now >= self._next_flush:
            self.stream.flush()
            self._next_flush = now + self.flush_every

    def flush(self) -> None:
        """Push out what is buffered (the loop calls it while it waits for a frame)."""
        self.stream.flush()
        self._next_flush = time.monotonic() + self.flush_every

    def close(self) -> None:
        self.stream.flush()
        if self._own:
            self.stream.close()
