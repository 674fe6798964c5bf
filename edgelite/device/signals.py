"""SIGTERM/SIGINT as a request to stop: the camera loop finishes its frame, flushes its outputs and returns."""

from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, why: list[str], enabled: bool):
    """SIGTERM/SIGINT set `stop` (the loop finishes its frame, flushes and returns); a second one aborts."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt  # asked twice: stop waiting for a stuck call
        why.append(signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
