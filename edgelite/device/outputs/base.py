"""`Output`: the interface every camera-loop output implements (console, JSON lines, display, the preview
server, MQTT, `--save-uncertain`).

The loop calls `write(result, frame)` for every result, in frame order, on its reporting thread (the main
thread with --display); `flush()` when that thread has nothing to do (a result buffered for a pipe goes
out then, not with the next frame); `close()` once, when the loop ends. An output subclasses `Output` to
inherit the no-op `flush` and `close`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edgelite.device.frames import Frame
    from edgelite.device.pipeline import Result


class Output(Protocol):
    """Where results go; see the module docstring for when the loop calls each method."""

    def write(self, result: Result, frame: Frame) -> None:
        """Take one result (and the frame it is about); must not block on a slow reader for long."""
        ...

    def flush(self) -> None:
        """Push out what is buffered. The default: nothing is."""

    def close(self) -> None:
        """Flush and release what the output holds (files, windows, threads, sockets). The default: nothing."""
