"""`--threads N` on a file: N one-thread copies of the model read frames from the source; the results come out
in frame order and equal a one-thread run's, the last frames are not lost, and an error in a copy reaches
the caller. A live source keeps one interpreter with all N threads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgelite.device.errors import EndOfSource
from edgelite.device.loop import RunOptions, load
from edgelite.device.pipeline import Pipeline
from edgelite.device.runtime import ModelLoadError
from edgelite.device.sources import open_source
from edgelite.device.workers import FramePool, can_split
from tests.device import devicekit


def _lines(p) -> list[dict]:
    assert p.returncode == 0, p.stderr
    return [json.loads(s) for s in p.stdout.splitlines()]


@pytest.mark.parametrize("fmt", ["int8", "onnx"])
def test_two_copies_give_the_one_thread_results_in_frame_order(tiny, heldout_video, fmt):
    one = _lines(devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--format", fmt, "--json", "-",
                                   "--threads", "1", "-q"))
    two = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--format", fmt, "--json", "-",
                            "--threads", "3", "--print-every", "0")
    assert "3 frames at a time, one thread each" in two.stderr
    two = _lines(two)
    assert [d["source_frame"] for d in two] == list(range(len(one)))  # every frame, in order, the last ones too
    assert [d["top_k"] for d in two] == [d["top_k"] for d in one]


def test_max_frames_is_exact_with_frames_in_flight(tiny, heldout_video):
    p = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--format", "int8", "--json", "-",
                          "--threads", "2", "--loop", "--max-frames", "77", "-q")
    assert [d["frame"] for d in _lines(p)] == list(range(77))


def _pool(tiny, copies: int) -> tuple[Pipeline, FramePool]:
    loaded = load(tiny["bundle"], RunOptions(format="int8", threads=copies))
    pipe = Pipeline(loaded.model, loaded.spec, loaded.labels)
    assert can_split(loaded.model, copies)
    return pipe, FramePool(pipe, copies)


def _read_all(pool: FramePool, source, limit=None) -> list:
    got = []
    pool.start(source.open(), got.append, limit=limit)
    while not pool.wait(1.0):
        pass
    pool.stop()
    return got


def test_copies_read_the_source_and_emit_in_frame_order_to_the_end(tiny, heldout_video):
    pipe, pool = _pool(tiny, 3)
    try:
        source = open_source(heldout_video, start=False, prepare=pipe.prepare)
        got = _read_all(pool, source)
        with pytest.raises(EndOfSource):  # the end of the file is what stopped them
            pool.raise_error()
        assert [o.frame.index for o in got] == list(range(len(tiny["heldout"][0])))
        direct = [pipe.run_model(o.frame).raw for o in got]  # the full-thread interpreter, on the same inputs
        assert all(np.array_equal(o.raw, d) for o, d in zip(got, direct, strict=True))
        # read again after the end (a --loop reopening): the same copies, from frame 0, up to a limit
        again = _read_all(pool, source, limit=5)
        pool.raise_error()  # the limit is not an error
        assert pool.done and [o.frame.index for o in again] == list(range(5))
    finally:
        pool.stop()
        source.close()


def test_an_error_in_a_copy_or_in_emit_reaches_the_caller(tiny, heldout_video):
    pipe, pool = _pool(tiny, 2)
    try:
        # a wrong-shaped input: the copy's set_input raises, and reading stops
        source = open_source(heldout_video, start=False, prepare=lambda img: np.zeros((2, 2, 3), np.uint8))
        assert _read_all(pool, source) == []
        with pytest.raises((ValueError, ModelLoadError)):
            pool.raise_error()
        source.close()

        def emit(out):  # the output's reader left after three results
            if out.frame.index == 3:
                raise BrokenPipeError(32, "Broken pipe")
            seen.append(out.frame.index)

        seen: list[int] = []
        source = open_source(heldout_video, start=False, prepare=pipe.prepare)
        pool.start(source.open(), emit)
        while not pool.wait(1.0):
            pass
        with pytest.raises(BrokenPipeError):
            pool.raise_error()
        assert seen == [0, 1, 2]
    finally:
        pool.stop()
        source.close()


def test_a_live_source_keeps_one_interpreter_with_every_thread(tiny, heldout_video):
    """--realtime reads a file the way a camera is read (frames dropped when the model falls behind): latency
    per frame matters there, so no frame split."""
    p = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--format", "int8", "--json", "-",
                          "--threads", "2", "--realtime", "--print-every", "0")
    assert p.returncode == 0, p.stderr
    assert "frames at a time" not in p.stderr and "2 threads" in p.stderr
