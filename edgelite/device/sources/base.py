"""The capture thread every camera-loop source is built on.

`Source` runs a subclass's `_run` in its own capture thread and passes `Frame`s over through a
latest-frame slot (live sources: the loop never lags, overwritten frames are counted as drops) or a
bounded queue (files and folders: read ahead in bursts, nothing dropped). The sources themselves are
`videocapture.py` (OpenCV), `folder.py` and `picamera.py` in this package.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from edgelite.device.errors import EndOfSource, SourceFailed
from edgelite.device.frames import Frame

log = logging.getLogger("edgelite.device")


class Source:
    """Base class: a capture thread feeding a `_FrameBuffer`. Subclasses implement `_run`."""

    live = True
    kind = "source"
    #: s `open()` waits for a capture thread a close left blocked in a driver call: a camera is exclusive, so
    #: opening it again while the old handle lives fails with "device busy" (VIDIOC_REQBUFS: EBUSY)
    reopen_wait = 0.0

    def __init__(self, name: str, *, capacity: int = 1, drop: bool = True):
        self.name = name
        #: optional BGR image -> RGB model input, run in the capture thread on every frame, so resizing
        #: overlaps inference on another core (the loop sets it to `Pipeline.prepare`)
        self.prepare = None
        self._capacity, self._drop = capacity, drop
        self._buf: _FrameBuffer | None = None
        self._thread: threading.Thread | None = None
        self._lingering: threading.Thread | None = None  # left blocked in a driver call by close()
        self._stop = threading.Event()
        self._dropped_before = 0  # drops of earlier openings (a reconnect starts a new buffer)

    # -- lifecycle
    def open(self) -> Source:
        """Start capturing. Raises SourceError when the source can never work; live sources report
        open failures later, through `read()` raising SourceFailed, so opening never blocks."""
        self.close()
        self.settle(self.reopen_wait)
        if self._buf is not None:
            self._dropped_before += self._buf.dropped
        self._stop = threading.Event()
        self._buf = _FrameBuffer(self._capacity, self._drop)
        self._prepare()
        self._thread = threading.Thread(target=self._thread_main, args=(self._buf, self._stop),
                                        name=f"capture:{self.name}", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 1.0) -> None:
        """Stop the capture thread. A thread blocked inside a driver call is left to finish on its own
        (it owns its capture handle and releases it), so closing never hangs the loop."""
        self._stop.set()
        if self._buf is not None:
            self._buf.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.debug("capture thread for %s still blocked in a read; leaving it", self.name)
                self._lingering = self._thread
            self._thread = None

    def settle(self, timeout: float) -> None:
        """Wait up to `timeout` s for a capture thread `close()` left blocked in a driver call."""
        if self._lingering is not None:
            self._lingering.join(timeout)
            if self._lingering.is_alive():
                log.debug("capture thread for %s still blocked after %.0f s; going on", self.name, timeout)
            self._lingering = None

    def __enter__(self) -> Source:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading
    def read(self, timeout: float) -> Frame | None:
        """The next frame, or None after `timeout` s. Raises EndOfSource at the end of a file or folder
        and SourceFailed when a live source failed."""
        if self._buf is None:
            raise RuntimeError("source is not open")
        return self._buf.get(timeout)

    def read_queued(self, timeout: float, limit: int = 0) -> list[Frame]:
        """As `read`, but every frame queued (at most `limit` when > 0), oldest first; [] after `timeout` s.
        A file's frames are read ahead: taking them together spares the loop a lock per frame (a
        live source holds one frame at most)."""
        if self._buf is None:
            raise RuntimeError("source is not open")
        return self._buf.get_queued(timeout, limit)

    @property
    def drops(self) -> bool:
        """True when frames the loop is too slow for are dropped (live sources, realtime files)."""
        return self._drop

    @property
    def dropped(self) -> int:
        """Frames overwritten before the loop took them, since the first opening."""
        return self._dropped_before + (self._buf.dropped if self._buf is not None else 0)

    # -- for subclasses
    def _prepare(self) -> None:
        """Synchronous checks at open time (raise SourceError)."""

    def _run(self, put, stop: threading.Event) -> None:
        """Capture until `stop` is set; call put(Frame) per frame (returns False when stopping).
        Return at the end of the stream; raise SourceFailed (or anything) when the source fails."""
        raise NotImplementedError

    def _thread_main(self, buf: _FrameBuffer, stop: threading.Event) -> None:
        # buf and stop belong to this opening: a thread left blocked by close() never touches the next one
        prepare = self.prepare

        def put(frame: Frame) -> bool:
            if prepare is not None:
                t0 = time.perf_counter()
                frame.model_input = prepare(frame.model_image if frame.model_image is not None else frame.image)
                frame.prep_ms = (time.perf_counter() - t0) * 1e3
            return buf.put(frame, stop)

        try:
            self._run(put, stop)
            buf.finish(None)
        except SourceFailed as e:
            buf.finish(e)
        except Exception as e:  # a driver exception: report it to the loop, which reconnects
            buf.finish(SourceFailed(f"{self.name}: {type(e).__name__}: {e}"))


class _FrameBuffer:
    """Hand-over between the capture thread and the loop: latest-frame slot (drop) or bounded queue.

    Each side waits on the condition only when it must (the reader on an empty buffer, the writer on a
    full queue) and is woken only then; a full queue wakes its writer once half of it has been taken,
    so a file is decoded in bursts rather than with a sleep and a wake-up per frame (at a thousand
    frames a second such wake-ups on one core slowed inference on the other measurably)."""

    def __init__(self, capacity: int, drop: bool):
        self._q: collections.deque[Frame] = collections.deque()
        self._capacity, self._drop = max(1, capacity), drop
        self._cond = threading.Condition()
        self._done = False
        self._error: SourceFailed | None = None
        self._reader_waits = self._writer_waits = False
        self.dropped = 0

    def put(self, frame: Frame, stop: threading.Event) -> bool:
        with self._cond:
            if self._drop:
                while len(self._q) >= self._capacity:
                    self._q.popleft()
                    self.dropped += 1
            elif len(self._q) >= self._capacity:  # full: sleep until the reader has taken half
                self._writer_waits = True
                while len(self._q) > self._capacity // 2 and not stop.is_set():
                    self._cond.wait(0.1)
                self._writer_waits = False
            if stop.is_set():
                return False
            self._q.append(frame)
            if self._reader_waits:
                self._cond.notify_all()
            return True

    def finish(self, error: SourceFailed | None) -> None:
        with self._cond:
            self._done, self._error = True, error
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def get(self, timeout: float) -> Frame | None:
        frames = self.get_queued(timeout, 1)
        return frames[0] if frames else None

    def get_queued(self, timeout: float, limit: int = 0) -> list[Frame]:
        with self._cond:
            if not self._q:
                deadline = time.monotonic() + timeout
                while not self._q:
                    if self._done:
                        if self._error is not None:
                            raise self._error
                        raise EndOfSource()
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return []
                    self._reader_waits = True
                    self._cond.wait(left)
                    self._reader_waits = False
            q = self._q
            if 0 < limit < len(q):
                frames = [q.popleft() for _ in range(limit)]
            else:
                frames = list(q)
                q.clear()
            if self._writer_waits and len(q) <= self._capacity // 2:
                self._cond.notify_all()  # half taken: the writer decodes the next burst
            return frames
