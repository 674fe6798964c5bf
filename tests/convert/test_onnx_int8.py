"""`--formats onnx_int8`: onnxruntime's static QDQ int8, calibrated on the images TFLite int8 uses, validated
like every other format and run by the device's ONNX adapter on raw pixels."""

from __future__ import annotations

import numpy as np
import pytest

from edgelite.bundle import Bundle
from edgelite.device.runtime import ONNXModel, load_model
from edgelite.formats import FORMATS, parse_formats

pytestmark = pytest.mark.slow


def test_the_name_is_in_the_one_format_table():
    assert FORMATS["onnx_int8"] == ("onnx", "int8")
    assert parse_formats("ONNX-QDQ,onnx") == ["onnx_int8", "onnx"]


def test_onnx_int8_beside_fp32_is_quantized_validated_and_close_to_float(run_dir, tmp_path):
    import onnx

    from edgelite.convert import convert

    b = convert(run_dir, tmp_path / "b", formats="int8,onnx,onnx_int8", calibration=64, verbose=False)
    m = {e.name: e for e in b.models}
    q, f = m["onnx_int8"], m["onnx"]
    assert q.status == "ok" and f.status == "ok", (q.error, f.error)
    assert (q.format, q.precision, q.path) == ("onnx", "int8", "model_int8.onnx")
    assert q.extra["onnx_int8"]["calibration_images"] == 64 and q.extra["onnx_int8"]["per_channel"] is True
    ops = {n.op_type for n in onnx.load(str(tmp_path / "b" / q.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert q.bytes < 0.5 * f.bytes, "int8 weights should make the file well under half the fp32 one"
    # validated on the held-out split like every format: close to float and to TFLite int8
    # (agreement measured against TFLite int8's on the same tiny model: a few dozen held-out images)
    assert q.metrics["agreement"] >= min(0.9, m["int8"].metrics["agreement"] - 0.05), (q.metrics, m["int8"].metrics)
    assert q.metrics["top1"] >= f.metrics["top1"] - 0.05
    model = load_model(tmp_path / "b" / q.path, num_threads=1)
    assert isinstance(model, ONNXModel) and model.takes_raw_pixels
    again = Bundle.load(tmp_path / "b")
    assert "onnx_int8" in again.available()


def test_onnx_int8_alone_exports_its_own_fp32_first(tiny, tmp_path):
    from edgelite.convert import convert

    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="onnx_int8", calibration=16, verbose=False)
    (q,) = b.models
    assert q.status == "ok", q.error
    assert sorted(p.name for p in (tmp_path / "b").glob("*.onnx")) == ["model_int8.onnx"]  # no fp32 left behind
    assert q.metrics["top1"] >= 0.9
    img = np.full((q_h := b.input.height, b.input.width, 3), (210, 40, 40), np.uint8)
    assert q_h > 0 and load_model(tmp_path / "b" / q.path).classify(img).argmax() == b.labels.index("red")
