"""The default conversion of a real run: every format exports, validates and lands in a sound bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgelite.bundle import FORMATS, Bundle, sha256_file
from edgelite.convert.metadata import read_metadata

pytestmark = pytest.mark.slow

FLOAT_AND_INT8 = ["fp32", "fp16", "dynamic", "int8", "onnx"]


def test_default_formats_all_export_and_validate(base_bundle):
    names = [m.name for m in base_bundle.models]
    assert names == ["fp32", "fp16", "dynamic", "int8", "edgetpu", "onnx"]
    for name in FLOAT_AND_INT8:
        e = base_bundle.entry(name)
        assert e.status == "ok", (name, e.error)
        assert (e.format, e.precision) == FORMATS[name]
        assert e.bytes and e.gzip_bytes and e.sha256
        m = e.metrics
        assert m["images"] == base_bundle.info["heldout"]["count"] > 0
        assert 0.0 <= m["top1"] <= 1.0 and 0.0 <= m["agreement"] <= 1.0
        assert set(m["per_class"]) == set(base_bundle.labels)
        assert m["delta"] == pytest.approx((m["top1"] - base_bundle.info["reference"]["top1"]) * 100)
        # the paired 95 % interval around it, and whether it excludes 0
        lo, hi = m["delta_ci"]
        assert lo <= m["delta"] + 1e-6 and m["delta"] - 1e-6 <= hi
        assert m["delta_distinguishable"] == (not lo <= 0 <= hi) and 0 <= m["delta_p"] <= 1


def test_the_table_shows_each_delta_with_its_interval(base_bundle):
    from edgelite.convert.report import LEGEND, table
    from edgelite.stats import format_delta

    text = table(base_bundle)
    for name in FLOAT_AND_INT8:
        m = base_bundle.entry(name).metrics
        assert format_delta(m["delta"], m["delta_ci"]) in text
    assert "95 %" in text and LEGEND in text


def test_manifest_round_trips_and_checksums_verify(base_bundle):
    b = Bundle.load(base_bundle.root)
    assert b.labels == base_bundle.labels and b.input == base_bundle.input
    assert (b.input.height, b.input.width, b.input.resize) == (48, 48, "bilinear")
    for name in FLOAT_AND_INT8:
        path = b.verified_path(b.entry(name))
        assert path.stat().st_size == b.entry(name).bytes
    assert b.select().name == "int8"  # the device's default pick without an Edge TPU
    assert (base_bundle.root / "labels.txt").read_text().split() == base_bundle.labels
    assert (base_bundle.root / "convert.log").is_file()


def test_float_exports_match_keras(base_bundle):
    fp32, onnx, fp16 = (base_bundle.entry(n).metrics for n in ("fp32", "onnx", "fp16"))
    ref = base_bundle.info["reference"]["top1"]
    assert fp32["agreement"] == 1.0 and fp32["max_prob_diff"] < 1e-4 and fp32["top1"] == ref
    # the ONNX bar: top-1 identical on the held-out split, max probability difference reported
    assert onnx["agreement"] == 1.0 and onnx["top1"] == ref and onnx["max_prob_diff"] < 1e-4
    assert fp16["agreement"] >= 0.95


def test_int8_takes_raw_uint8_pixels(base_bundle):
    q = base_bundle.entry("int8").quantization
    assert q["input"]["dtype"] == "uint8" and q["input"]["scale"] == pytest.approx(1.0) and q["input"]["zero_point"] == 0
    assert q["raw_pixels"] is True and q["per_channel"] is True
    assert q["output"]["dtype"] == "uint8" and q["output"]["scale"] == pytest.approx(1 / 256)
    # the float exports also take uint8 (the CAST is in the graph)
    assert base_bundle.entry("fp32").quantization["input"]["dtype"] == "uint8"


def test_sizes_shrink_as_expected(base_bundle):
    b = {n: base_bundle.entry(n).bytes for n in FLOAT_AND_INT8}
    assert b["fp16"] / b["fp32"] < 0.55
    assert b["int8"] / b["fp32"] < 0.31 and b["dynamic"] / b["fp32"] < 0.31


def test_heldout_npz_is_the_test_split_at_model_size(base_bundle):
    h = base_bundle.info["heldout"]
    assert h["path"] == "heldout.npz" and sha256_file(base_bundle.root / h["path"]) == h["sha256"]
    x, y = Bundle.load(base_bundle.root).heldout()
    assert x.dtype == np.uint8 and x.shape == (h["count"], 48, 48, 3)
    assert y.shape == (h["count"],) and set(np.unique(y)) <= set(range(len(base_bundle.labels)))


def test_every_tflite_carries_labels_and_input_spec(base_bundle, tmp_path):
    import shutil

    for name in ("fp32", "fp16", "dynamic", "int8"):
        lone = tmp_path / f"{name}.tflite"  # a file on its own, away from its manifest
        shutil.copyfile(base_bundle.root / base_bundle.entry(name).path, lone)
        meta = read_metadata(lone)
        assert meta["labels"] == base_bundle.labels
        assert meta["input"] == base_bundle.input.to_dict()
        assert meta["model"] == name and meta["edgelite"] == 1


def test_metadata_also_reads_with_tensorflow_flatbuffer_utils(base_bundle):
    from tensorflow.lite.tools import flatbuffer_utils as fu

    obj = fu.read_model(str(base_bundle.root / base_bundle.entry("int8").path))
    entries = {m.name.decode(): bytes(obj.buffers[m.buffer].data) for m in obj.metadata}
    assert json.loads(entries["edgelite"])["labels"] == base_bundle.labels
    assert "min_runtime_version" in entries  # the converter's own entries are kept


def test_device_loads_and_classifies_from_the_bundle(base_bundle):
    from edgelite.device.runtime import load_from_bundle

    b = Bundle.load(base_bundle.root)
    x, y = b.heldout()
    for name in ("int8", "onnx"):
        model, entry = load_from_bundle(b, name)
        scores = model.classify(x[0])
        assert scores.shape == (len(b.labels),) and abs(float(scores.sum()) - 1.0) < 0.05


def test_edgetpu_is_skipped_with_a_reason_and_a_static_report(base_bundle):
    e = base_bundle.entry("edgetpu")
    assert e.status == "skipped" and e.path is None
    assert "edgetpu_compiler not on PATH" in e.error and "ops on the Edge TPU" in e.error
    rep = json.loads((base_bundle.root / "edgetpu_compat.json").read_text())["int8"]
    assert rep["compatible"] and rep["cpu_ops"] == 0 and rep["split"] is None
    assert rep["checks"] == {"int8": True, "static_shapes": True, "batch_1": True, "supported_ops": True}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "SOFTMAX"} <= set(rep["by_op"])
    md = (base_bundle.root / "edgetpu_compat.md").read_text()
    assert "No split" in md and "| CONV_2D |" in md
    assert base_bundle.entry("int8").extra["edgetpu_compat"]["compatible"] is True


def test_manifest_records_provenance_and_environment(base_bundle):
    info = json.loads((base_bundle.root / "edgelite.json").read_text())["info"]
    assert info["source"]["backbone"] == "efficientnet_lite0"
    assert info["settings"]["calibration_images"] == 64 and info["settings"]["io_type"] == "uint8"
    assert info["environment"]["tensorflow"] and info["reference"]["top1"] is not None


def test_table_lists_every_format(base_bundle):
    from edgelite.convert.report import markdown, table

    text = table(base_bundle)
    assert text.splitlines()[0].split()[:3] == ["format", "status", "size"]
    for name in ["keras (float)", *FLOAT_AND_INT8, "edgetpu"]:
        assert name in text
    assert "skipped: edgetpu_compiler not on PATH" in text
    table_part, legend = markdown(base_bundle).split("\n\n")
    assert table_part.count("\n") + 1 == len(base_bundle.models) + 3  # header, rule, keras float, one per model
    assert "not distinguishable from zero" in legend


def test_bench_of_int8_alone_shows_the_drop_convert_measured(base_bundle):
    """Issue 25, item 1: `edgelite bench BUNDLE --formats int8` (no fp32 row) must report int8's Δ against
    the float Keras model, as convert did (its per-image results are in the manifest), not +0.0 against itself."""
    from edgelite.bench.run import bench
    from edgelite.stats import unpack_correct

    ref = base_bundle.info["reference"]
    assert unpack_correct(ref["correct"]).mean() == pytest.approx(ref["top1"])
    res = bench([str(base_bundle.root)], formats="int8", threads="1", runs=3, warmup=1)
    (row,) = res["rows"]
    m = base_bundle.entry("int8").metrics
    assert row["delta_top1"] == pytest.approx(m["delta"], abs=1e-3)
    assert row["delta_ci"] == pytest.approx(m["delta_ci"], abs=1e-3)
