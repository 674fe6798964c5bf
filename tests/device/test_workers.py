"""`--threads N` on a file: N one-thread copies of the model take frames from one queue; the results come out
in frame order and equal a one-thread run's, the last frames are not lost, and an error in a copy reaches
the caller. A live source keeps one interpreter with all N threads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgelite.device.loop import RunOptions, load
from edgelite.device.pipeline import Pipeline
from edgelite.device.runtime import ModelLoadError
from edgelite.device.sources import Frame
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


def test_pool_keeps_order_under_uneven_work_and_drains(tiny):
    x, _ = tiny["heldout"]
    pipe, pool = _pool(tiny, 3)
    try:
        frames = [Frame(image=np.ascontiguousarray(img[:, :, ::-1]), index=i, timestamp=0.0) for i, img in enumerate(x)]
        got = []
        for f in frames:
            got += pool.run(f)
        got += pool.drain()
        assert [f.index for f, *_ in got] == list(range(len(frames)))
        direct = [pipe.run_model(f)[0] for f in frames]
        assert all(np.array_equal(s, d) for (_, s, _, _), d in zip(got, direct, strict=True))
    finally:
        pool.close()


def test_an_error_in_a_copy_reaches_the_caller(tiny):
    pipe, pool = _pool(tiny, 2)
    try:
        bad = Frame(image=np.zeros((0, 0, 3), np.uint8), index=0, timestamp=0.0,
                    model_input=np.zeros((2, 2, 3), np.uint8))  # a wrong-shaped input: the copy's set_input raises
        with pytest.raises((ValueError, ModelLoadError)):
            pool.run(bad)
            pool.run(bad)
            pool.drain()
    finally:
        pool.close()


def test_a_live_source_keeps_one_interpreter_with_every_thread(tiny, heldout_video):
    """--realtime reads a file the way a camera is read (frames dropped when the model falls behind): latency
    per frame matters there, so no frame split."""
    p = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--format", "int8", "--json", "-",
                          "--threads", "2", "--realtime", "--print-every", "0")
    assert p.returncode == 0, p.stderr
    assert "frames at a time" not in p.stderr and "2 threads" in p.stderr
