"""`--threads N` on a file: N copies of the model with one thread each, N frames at a time.

A live camera gets every thread on each frame (the lowest latency per frame). A file or folder is read as
fast as the model goes, and there a small model scales better across frames than inside one: on two cores
two one-thread interpreters ran 2,280 frames/s where one two-thread interpreter ran 2,050 (96-px
EfficientNet-Lite0 int8, benchmarks/results/run_loop_small.md). Each copy has its own thread; they take frames from
one queue, and the loop's thread only hands frames in and puts the results back in frame order.

    >>> pool = FramePool(pipeline, copies=2)      # doctest: +SKIP
    >>> for frame, scores, prep_ms, infer_ms in pool.run(frame): ...   # 0 or more, in order
    >>> pool.drain()                               # the frames still in the workers, in order
"""

from __future__ import annotations

import copy
import queue
import threading
from typing import Any

from edgelite.device.frames import Frame
from edgelite.device.pipeline import Pipeline
from edgelite.device.runtime import Model, ONNXModel, TFLiteModel


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
    """`copies` threads, each with a one-thread copy of `pipeline`'s model, take frames from one queue;
    `run` hands a frame in and returns the frames finished so far, in frame order."""

    def __init__(self, pipeline: Pipeline, copies: int, ahead: int | None = None):
        self.copies = copies
        self.ahead = ahead or 2 * copies  # frames in the workers at most: each finds the next one waiting
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=_serve, args=(_rebind(pipeline), self._work, self._done),
                                          name=f"edgelite-model-{i}", daemon=True) for i in range(copies)]
        for t in self._threads:
            t.start()
        self._sent = self._emitted = 0
        self._held: dict[int, tuple] = {}  # finished out of order, by sequence number

    def run(self, frame: Frame) -> list[tuple[Frame, Any, float, float]]:
        self._work.put((self._sent, frame))
        self._sent += 1
        return self._collect(wait=self._sent - self._emitted >= self.ahead)

    def drain(self) -> list[tuple[Frame, Any, float, float]]:
        """Wait for every frame handed in; raise what a worker raised."""
        out = []
        while self._emitted < self._sent:
            out += self._collect(wait=True)
        return out

    def _collect(self, wait: bool) -> list[tuple[Frame, Any, float, float]]:
        out = []
        while True:
            try:
                item = self._done.get() if wait and not out else self._done.get_nowait()
            except queue.Empty:
                return out
            if isinstance(item, BaseException):
                self._sent = self._emitted  # nothing more comes from the frames in flight
                raise item
            self._held[item[0]] = item[1:]
            while self._emitted in self._held:
                out.append(self._held.pop(self._emitted))
                self._emitted += 1

    def close(self) -> None:
        for _ in self._threads:
            self._work.put(None)
        for t in self._threads:
            t.join(timeout=2.0)
        self._threads = []


def _rebind(pipeline: Pipeline) -> Pipeline:
    """A shallow copy of `pipeline` running a one-thread copy of its model (only `run_model` is used on it)."""
    twin = copy.copy(pipeline)
    twin.model = one_thread_copy(pipeline.model)
    twin._rgb = pipeline._rgb.copy()
    return twin


def _serve(pipeline: Pipeline, work: queue.SimpleQueue, done: queue.SimpleQueue) -> None:
    while True:
        job = work.get()
        if job is None:
            return
        seq, frame = job
        try:
            done.put((seq, frame, *pipeline.run_model(frame)))
        except BaseException as e:  # handed to the loop's thread, which raises it
            done.put(e)
