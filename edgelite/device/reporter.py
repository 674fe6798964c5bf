"""The loop's reporting thread: each frame's result is finished (top-k, label events, statistics) and
written to the outputs off the thread that runs the model.

At a thousand frames a second the Python around `invoke()` — top-k, the Result, its JSON line, the
outputs — is several percent of a frame. Handed to this thread, it runs while the model thread is
inside `invoke()` (which releases the GIL), on the other core. The model thread only appends to a
deque (no lock, no wake-up: this thread polls every 5 ms and drains what is there), and waits only
when `max_pending` results are queued: the outputs never fall further behind than that (2 for a live
camera, whose loop must never lag; a file may run ahead by 64).

    >>> seen = []
    >>> rep = Reporter(seen.append)         # the loop: Reporter(self._report), items are ModelOutputs
    >>> rep.submit(1); rep.submit(2)        # handle(item) runs on the reporting thread, in order
    >>> rep.close(); seen                   # finishes the queue, then raises what handle raised, if anything
    [1, 2]
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("edgelite.device")

T = TypeVar("T")  # the loop's: pipeline.ModelOutput

POLL = 0.005  # s between looks at an empty queue


class Reporter(Generic[T]):
    """Runs `handle(item)` for every submitted item, in order, on its own thread (or inline when not
    `threaded`). An exception in `handle` stops the thread; the next `submit` (or `close`) raises it."""

    def __init__(self, handle: Callable[[T], None], *, max_pending: int = 64, threaded: bool = True,
                 idle: Callable[[], None] | None = None):
        self.handle, self.idle, self.max_pending = handle, idle, max(1, max_pending)
        self._q: collections.deque[T] = collections.deque()
        self._error: BaseException | None = None
        self._closing = False
        self._thread = None
        self.threaded = threaded
        if threaded:
            self._thread = threading.Thread(target=self._main, name="edgelite-report", daemon=True)
            self._thread.start()

    def submit(self, item: T) -> None:
        if self._thread is None:
            self.handle(item)
            return
        self.raise_error()
        while len(self._q) >= self.max_pending:  # the outputs fell behind: wait for them
            time.sleep(POLL / 4)
            self.raise_error()
        self._q.append(item)

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self, timeout: float = 10.0) -> None:
        """Report what is queued, stop the thread, then raise what `handle` raised, if anything."""
        self._closing = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # an output blocked (a pipe nobody reads): exit rather than hang
                log.warning("the outputs were still busy after %g s: %d queued results are not written",
                            timeout, len(self._q))
            self._thread = None
        self.raise_error()

    def _main(self) -> None:
        q, busy = self._q, False
        while True:
            # read before the queue: every item was submitted before `close()`, so a queue found empty
            # after `closing` was seen is empty for good (an item submitted during the idle flush is not lost)
            closing = self._closing
            if not q:
                if busy and self.idle is not None:
                    self._call(self.idle)  # the queue ran dry: push buffered output out now
                busy = False
                if closing or self._error is not None:
                    return
                time.sleep(POLL)
                continue
            busy = True
            if not self._call(self.handle, q.popleft()):
                q.clear()
                return

    def _call(self, fn, *args) -> bool:
        try:
            fn(*args)
            return True
        except BaseException as e:  # handed to the model thread, which raises it
            self._error = e
            return False
