"""Options that change the exported files: --io-type, --per-tensor (also with --qat), --calibration, --data."""

from __future__ import annotations

import json
import shutil

import pytest

from edgelite.bundle import Bundle
from edgelite.convert import convert
from edgelite.convert.errors import ConvertError


@pytest.mark.parametrize("io_type, dtype, zero", [("uint8", "uint8", 0), ("int8", "int8", -128)])
def test_io_type_keeps_raw_pixel_scale(tiny, tmp_path, io_type, dtype, zero):
    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="int8", io_type=io_type, calibration=16,
                verbose=False)
    q = b.entry("int8").quantization["input"]
    assert (q["dtype"], q["scale"], q["zero_point"]) == (dtype, pytest.approx(1.0), zero)
    assert b.entry("int8").quantization["raw_pixels"] is (io_type == "uint8")
    assert b.entry("int8").metrics["top1"] == 1.0  # the device's set_input quantizes int8 input correctly


def test_io_type_float32(tiny, tmp_path):
    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="int8", io_type="float32", calibration=16,
                verbose=False)
    q = b.entry("int8").quantization
    assert q["input"]["dtype"] == "float32" and q["output"]["dtype"] == "float32"
    assert b.entry("int8").metrics["top1"] == 1.0
    assert b.entry("int8").extra["edgetpu_compat"]["cpu_ops"] >= 1  # the float->int8 QUANTIZE runs on the CPU


def test_per_tensor_writes_one_scale_per_weight_tensor(tiny, tmp_path):
    from tensorflow.lite.tools import flatbuffer_utils as fu

    scales = {}
    for per_tensor in (False, True):
        b = convert(tiny["model"], tmp_path / str(per_tensor), data=tiny["data"], formats="int8",
                    per_tensor=per_tensor, calibration=16, verbose=False)
        assert b.entry("int8").quantization["per_channel"] is (not per_tensor)
        obj = fu.read_model(str(b.root / "model_int8.tflite"))
        sg = obj.subgraphs[0]
        conv = next(op for op in sg.operators if fu.opcode_to_name(obj, op.opcodeIndex) == "CONV_2D")
        scales[per_tensor] = len(sg.tensors[conv.inputs[1]].quantization.scale)
    assert scales == {False: 3, True: 1}


def test_per_tensor_qat_trains_and_exports_one_scale_per_weight_tensor(tiny, tmp_path):
    from tensorflow.lite.tools import flatbuffer_utils as fu

    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="qat_int8", qat=True, per_tensor=True,
                qat_epochs=1, calibration=16, verbose=False)
    e = b.entry("qat_int8")
    assert e.status == "ok" and e.metrics["top1"] == 1.0
    assert e.quantization["per_channel"] is False and b.info["optimisation"]["qat"]["per_channel"] is False
    obj = fu.read_model(str(b.root / e.path))
    sg = obj.subgraphs[0]
    weighted = [op for op in sg.operators if fu.opcode_to_name(obj, op.opcodeIndex) in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(weighted) == 2 and all(len(sg.tensors[op.inputs[1]].quantization.scale) == 1 for op in weighted)


def test_calibration_count_is_recorded(tiny, tmp_path):
    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="int8", calibration=5, verbose=False)
    assert b.info["settings"]["calibration_images"] == 5 and b.info["settings"]["calibration"] == 5


def test_model_file_with_data_records_its_source(tiny, tmp_path):
    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="fp32", verbose=False)
    assert b.labels == ["blue", "green", "red", "yellow"] and (b.input.height, b.input.width) == (32, 32)
    assert b.info["source"]["kind"] == "model" and "fresh split" in b.info["notes"][0]


@pytest.mark.slow
def test_moved_data_folder_needs_data(run_dir, tmp_path):
    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved, ignore=shutil.ignore_patterns("checkpoints", "*.png"))
    split = json.loads((moved / "split.json").read_text())
    data_dir = split["data_dir"]
    split["data_dir"] = str(tmp_path / "gone")
    (moved / "split.json").write_text(json.dumps(split))
    with pytest.raises(ConvertError, match=r"data folder .*gone is gone; pass --data DIR"):
        convert(moved, tmp_path / "b", formats="fp32", verbose=False)
    b = convert(moved, tmp_path / "b", formats="fp32", data=data_dir, verbose=False)
    assert Bundle.load(b.root).entry("fp32").metrics["agreement"] == 1.0
