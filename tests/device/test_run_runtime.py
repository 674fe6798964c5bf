"""The runtime interface: both adapters implement the written-down `Model` protocol, and one record
(`Prediction`) carries a class from `top_k` to the JSON line unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgelite.bundle import Bundle
from edgelite.device import pipeline, runtime
from edgelite.device.frames import Frame
from edgelite.device.pipeline import Pipeline
from edgelite.device.runtime import Model, Prediction, load_from_bundle, top_k


@pytest.fixture(scope="module")
def bundle(tiny):
    return Bundle.load(tiny["bundle"])


@pytest.mark.parametrize("fmt, adapter", [("int8", "TFLiteModel"), ("fp32", "TFLiteModel"), ("onnx", "ONNXModel")])
def test_every_adapter_implements_the_model_protocol(bundle, heldout, fmt, adapter):
    model, _ = load_from_bundle(bundle, fmt)
    assert type(model).__name__ == adapter and isinstance(model, Model)
    members = {"path", "runtime", "delegate", "input_height", "input_width", "input_dtype", "num_classes",
               "takes_raw_pixels", "input_view", "set_input", "invoke", "scores", "classify"}
    assert members <= set(dir(model))
    assert (model.input_height, model.input_width, model.num_classes) == (
        bundle.input.height, bundle.input.width, len(bundle.labels))
    img = heldout[0][0]
    model.set_input(img)
    model.invoke()
    stepwise = model.scores().copy()
    assert stepwise.shape == (model.num_classes,) and stepwise.dtype == np.float32
    assert np.allclose(model.classify(img), stepwise)


def test_the_protocol_rejects_an_object_that_is_not_a_model():
    assert not isinstance(object(), Model)


def test_top_k_names_classes_and_keeps_pycorals_order():
    scores = np.array([0.125, 0.5, 0.25, 0.125], np.float32)
    assert top_k(scores, 2) == [Prediction(1, None, 0.5), Prediction(2, None, 0.25)]
    named = top_k(scores, 3, threshold=0.2, labels=["a", "b", "c", "d"])
    assert named == [Prediction(1, "b", 0.5), Prediction(2, "c", 0.25)]
    assert named[0]._fields == ("id", "label", "score")


def test_pipeline_and_runtime_share_one_prediction_record(bundle, heldout):
    assert pipeline.Prediction is runtime.Prediction
    model, _ = load_from_bundle(bundle, "int8")
    import cv2

    bgr = cv2.cvtColor(heldout[0][0], cv2.COLOR_RGB2BGR)
    result = Pipeline(model, bundle.input, bundle.labels, top_k=2).process(Frame(bgr, 0, 0.0))
    assert all(type(p) is Prediction for p in result.top_k)
    line = json.loads(json.dumps(result.to_dict()))
    assert [set(p) for p in line["top_k"]] == [{"id", "label", "score"}] * 2  # JSON keys stay as they were
    assert line["top_k"][0]["label"] == result.label == bundle.labels[result.top_k[0].id]
