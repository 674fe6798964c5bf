"""`--threads N` on a file: N copies of the model with one thread each, N frames at a time.

A live camera gets every thread on each frame (the lowest latency per frame). A file or folder is read as
fast as the model goes, and there a small model scales better across frames than inside one: on two cores
two one-thread interpreters ran 2,280 frames/s where one two-thread interpreter ran 2,050 on an AMD EPYC,
and 1,950 against 1,400 on an Intel Xeon (96-px EfficientNet-Lite0 int8, benchmarks/results/run_loop_small.md).

Each copy runs on its own thread and takes its next frame from the source itself, then hands the result to
`emit` in frame order: no thread relays frames between the source and the models, so nothing is woken per
frame (a relaying loop thread cost 48 us of CPU a frame and a wake-up on a core the models needed).

    >>> pool = FramePool(pipeline, copies=2)               # doctest: +SKIP
    >>> pool.start(source, emit, limit=1000)               # doctest: +SKIP
    >>> while not pool.wait(0.2): ...                      # doctest: +SKIP
    >>> pool.stop(); pool.raise_error()                    # doctest: +SKIP

`emit` gets each frame's `ModelOutput`, in frame order; the caller watches stop, stalls and the watchdog
while it waits; `raise_error` raises what ended the reading (EndOfSource, SourceFailed, what emit raised).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable

from edgelite.device.pipeline import ModelOutput, Pipeline
from edgelite.device.runtime import Model, ONNXModel, TFLiteModel
from edgelite.device.sources.base import Source

READ_SLICE = 0.2  # s: the longest a copy waits for a frame before it looks at stop again


def one_thread_copy(model: Model) -> Model:
    """Another interpreter of the same model bytes (the ones verified at load), with one thread."""
    if isinstance(model, TFLiteModel) and model.delegate is None:
        return TFLiteModel(model.path, num_threads=1, content=model._content)
    if isinstance(model, ONNXModel):
        return ONNXModel(model.path, num_threads=1, content=model._content)
    raise ValueError(f"{model.path.name}: no CPU copy of a {type(model).__name__} with delegate {model.delegate}")


def can_split(model: Model, threads: int | None) -> bool:
    """True when `threads` > 1 can go to frames instead: a CPU model (an Edge TPU is one device)."""
    return bool(threads and threads > 1) and isinstance(model, (TFLiteModel, ONNXModel)) and model.delegate is None


class FramePool:
    """`copies` threads, each with a one-thread copy of `pipeline`'s model, read frames from one source
    and hand `emit` each frame's `ModelOutput` in frame order (one call at a time)."""

    def __init__(self, pipeline: Pipeline, copies: int):
        self.copies = copies
        self._twins = [_rebind(pipeline) for _ in range(copies)]  # made once, kept across reopenings
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.taken = 0  # frames read from the source since `start`
        self.last_frame = time.monotonic()  # when a copy last got a frame (the caller's stall check)
        self.error: BaseException | None = None

    def start(self, source: Source, emit: Callable[[ModelOutput], None], limit: int | None = None) -> None:
        """Read the (open) `source` until it ends, `limit` frames were read, `stop()` or an error."""
        self.stop()
        self._source, self._emit, self._limit = source, emit, limit
        self._stop = threading.Event()
        self._read_lock, self._emit_lock = threading.Lock(), threading.Lock()
        self._held: dict[int, ModelOutput] = {}  # finished out of order, by sequence number
        self._next = self.taken = 0
        self.error = None
        self.last_frame = time.monotonic()
        self._threads = [threading.Thread(target=self._serve, args=(twin,), name=f"edgelite-model-{i}", daemon=True)
                         for i, twin in enumerate(self._twins)]
        for t in self._threads:
            t.start()

    def wait(self, timeout: float) -> bool:
        """True once every copy has stopped (the source ended, the limit, an error); False after `timeout` s."""
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
            if t.is_alive():
                return False
        return True

    def stop(self) -> None:
        """Let each copy finish (and emit) the frame it has, then end the threads."""
        self._stop.set()
        for t in self._threads:
            t.join()
        self._threads = []

    def raise_error(self) -> None:
        """Raise what ended the reading, if it was not `stop()` or the limit: EndOfSource, SourceFailed,
        an inference error, or what `emit` raised (BrokenPipeError when the output's reader left)."""
        if self.error is not None:
            raise self.error

    @property
    def done(self) -> bool:
        """True when the limit was reached."""
        return self._limit is not None and self.taken >= self._limit

    def _serve(self, twin: Pipeline) -> None:
        source, stop = self._source, self._stop
        try:
            while not stop.is_set():
                with self._read_lock:
                    if self.done or stop.is_set():
                        return
                    t0 = time.perf_counter()
                    frame = source.read(READ_SLICE)
                    if frame is None:
                        continue
                    frame.capture_ms, frame.dropped = (time.perf_counter() - t0) * 1e3, source.dropped
                    seq = self.taken
                    self.taken += 1
                    self.last_frame = time.monotonic()
                out = twin.run_model(frame)
                with self._emit_lock:  # whoever finishes the next frame in order emits every one ready
                    self._held[seq] = out
                    while self._next in self._held:
                        self._emit(self._held.pop(self._next))
                        self._next += 1
        except BaseException as e:  # the first one ends the reading (the others finish their frames)
            with self._emit_lock:
                if self.error is None:
                    self.error = e
            stop.set()


def _rebind(pipeline: Pipeline) -> Pipeline:
    """A shallow copy of `pipeline` running a one-thread copy of its model (only `run_model` is used on it)."""
    twin = copy.copy(pipeline)
    twin.model = one_thread_copy(pipeline.model)
    twin._rgb = pipeline._rgb.copy()
    twin._shape_ok = False  # its own model's output is checked once too
    return twin
