"""The pipeline on real models: pixels straight into the input tensor, dequantized outputs, the capture
thread's preparation equal to the in-loop one, smoothing and timings."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgelite.bundle import Bundle
from edgelite.device.frames import Frame
from edgelite.device.pipeline import Pipeline, StageStats
from edgelite.device.preprocess import prepare_bgr
from edgelite.device.runtime import load_from_bundle
from tests.device import devicekit


@pytest.fixture(scope="module")
def bundle(tiny):
    return Bundle.load(tiny["bundle"])


def frame_of(rgb: np.ndarray, scale: int = 3) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def test_int8_takes_raw_pixels_straight_into_its_tensor(bundle, heldout):
    model, _ = load_from_bundle(bundle, "int8")
    assert model.takes_raw_pixels and model.input_view() is not None  # uint8, scale 1, zero point 0
    pipe = Pipeline(model, bundle.input, bundle.labels)
    img = frame_of(heldout[0][0])
    pipe.preprocess(img)
    tensor = model.interpreter.get_tensor(model._in["index"])[0]
    assert np.array_equal(tensor, prepare_bgr(img, bundle.input))
    assert np.array_equal(tensor, heldout[0][0])  # 3x nearest up, bilinear down: exactly the image


def test_fp32_and_onnx_cast_through_a_buffer(bundle):
    for fmt in ("fp32", "onnx"):
        model, _ = load_from_bundle(bundle, fmt)
        assert not model.takes_raw_pixels and model.input_view() is None


def test_int8_scores_are_dequantized_and_agree_with_fp32(bundle, heldout):
    x, _ = heldout
    q, _ = load_from_bundle(bundle, "int8")
    f, _ = load_from_bundle(bundle, "fp32")
    for img in x[:20]:
        sq, sf = q.classify(img), f.classify(img)
        assert sq.dtype == np.float32 and sq.sum() == pytest.approx(1.0, abs=0.02)
        assert np.abs(sq - sf).max() < 0.05 and sq.argmax() == sf.argmax()


def test_prepared_in_the_capture_thread_equals_prepared_in_the_loop(bundle, heldout):
    model, _ = load_from_bundle(bundle, "int8")
    pipe = Pipeline(model, bundle.input, bundle.labels)
    img = frame_of(heldout[0][5])
    a = pipe.process(Frame(img, 0, 0.0))
    prepared = Frame(img, 1, 0.0, model_input=pipe.prepare(img), prep_ms=0.25)
    b = pipe.process(prepared)
    assert [(p.id, p.score) for p in a.top_k] == [(p.id, p.score) for p in b.top_k]
    assert b.timings_ms["preprocess"] >= 0.25  # the capture thread's time is reported, not hidden


def test_gray_and_bgra_frames(bundle, heldout):
    model, _ = load_from_bundle(bundle, "fp32")
    pipe = Pipeline(model, bundle.input, bundle.labels)
    bgr = frame_of(heldout[0][1])
    for img in (cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)):
        r = pipe.process(Frame(img, 0, 0.0))
        assert len(r.top_k) == 3


def test_result_json_and_timings(bundle, heldout):
    model, _ = load_from_bundle(bundle, "int8")
    pipe = Pipeline(model, bundle.input, bundle.labels, top_k=2)
    results = [pipe.process(Frame(frame_of(img), i, 123.0 + i, capture_ms=0.5, dropped=2))
               for i, img in enumerate(heldout[0][:5])]
    d = json.loads(json.dumps(results[-1].to_dict()))
    assert d["frame"] == 4 and d["timestamp"] == 127.0 and len(d["top_k"]) == 2
    assert d["timings_ms"]["capture"] == 0.5 and d["dropped"] == 2  # both from the Frame
    assert d["timings_ms"]["total"] == pytest.approx(sum(v for k, v in d["timings_ms"].items() if k != "total"),
                                                     abs=1e-3)
    assert results[-1].fps > 0 and pipe.stats.count == 5
    assert pipe.stats.means()["inference"] > 0
    assert d["label"] in devicekit.LABELS


def test_smoothing_averages_the_last_n_scores(bundle, heldout):
    x, y = heldout
    model, _ = load_from_bundle(bundle, "fp32")
    red, blue = x[y == 0][0], x[y == 2][0]
    pipe = Pipeline(model, bundle.input, bundle.labels, smooth=3, top_k=4)
    s_red, s_blue = model.classify(red).copy(), model.classify(blue).copy()
    pipe.process(Frame(frame_of(red), 0, 0.0))
    r = pipe.process(Frame(frame_of(blue), 1, 0.0))
    scores = {p.label: p.score for p in r.top_k}
    expected = (s_red + s_blue) / 2
    for i, label in enumerate(bundle.labels):
        assert scores[label] == pytest.approx(float(expected[i]), abs=1e-5)


def test_stage_stats_are_bounded():
    st = StageStats(window=10)
    for i in range(1000):
        st.add({"capture": 1.0, "preprocess": 1.0, "inference": float(i), "postprocess": 1.0, "total": 3.0 + i})
    assert st.count == 1000 and st.percentile("inference", 50) == pytest.approx(994.5)
    assert st.means()["inference"] == pytest.approx(499.5)
