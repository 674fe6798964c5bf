"""Pruning (also in blocks), QAT and PQAT (also per-tensor) on the real pretrained-backbone classifier
(EfficientNet-Lite0, flat graph)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_pruning_reaches_its_sparsity(pqat_bundle):
    e = pqat_bundle.entry("pruned_int8")
    assert e.status == "ok", e.error
    info = pqat_bundle.info["optimisation"]["prune"]
    assert info["target"] == 0.5 and info["achieved"] == pytest.approx(0.5, abs=0.005)
    assert info["layers"] > 30  # every Conv2D and the Dense head
    # measured in the .tflite file itself: the zeros survive int8 conversion
    assert e.extra["sparsity"] == pytest.approx(0.5, abs=0.02)
    # sparsity only pays off compressed
    assert e.gzip_bytes / e.bytes < 0.7
    assert e.metrics["top1"] is not None and e.metrics["agreement"] is not None


def test_pqat_keeps_the_sparsity(pqat_bundle):
    e = pqat_bundle.entry("pqat_int8")
    assert e.status == "ok", e.error
    qat = pqat_bundle.info["optimisation"]["qat"]
    assert qat["scheme"] == "Default8BitPrunePreserveQuantizeScheme"
    assert qat["sparsity_before"] == pytest.approx(0.5, abs=0.005)
    assert qat["sparsity_after"] == pytest.approx(qat["sparsity_before"], abs=0.002)
    assert e.extra["sparsity"] == pytest.approx(0.5, abs=0.02)
    assert e.gzip_bytes / e.bytes < 0.7
    assert e.quantization["raw_pixels"] is True
    assert pqat_bundle.entry("pqat_int8").extra["edgetpu_compat"]["compatible"] is True


def test_qat_works_on_the_pretrained_backbone_classifier(qat_bundle):
    e = qat_bundle.entry("qat_int8")
    assert e.status == "ok", e.error
    qat = qat_bundle.info["optimisation"]["qat"]
    assert qat["scheme"] == "Default8BitQuantizeScheme" and qat["ranges_initialised"] > 50
    # the input range is pinned to raw pixels: the device writes camera bytes straight in
    q = e.quantization["input"]
    assert (q["dtype"], q["scale"], q["zero_point"]) == ("uint8", pytest.approx(1.0), 0)
    # the int8 file behaves like the float model (ranges initialised from it, then fine-tuned)
    assert e.metrics["agreement"] >= 0.6
    assert abs(e.metrics["delta"]) <= 20
    assert e.extra["edgetpu_compat"]["compatible"] is True


def test_qat_range_init_makes_the_untrained_qat_model_match_float(run_dir):
    """tfmot starts every range at [-6, 6], which clamps raw 0..255 pixels: without the range
    initialisation a freshly quantized model is garbage, with it it follows the float model."""
    from edgelite.convert.optimize.calibration import _quant_vars
    from edgelite.convert.optimize.qat import quantize_aware
    from edgelite.train.rundir import load_run_model, load_split_images

    x, y, _ = load_split_images(run_dir, "test")
    model = load_run_model(run_dir)
    ref = model.predict(x.astype(np.float32), verbose=0).argmax(1)
    qat, info = quantize_aware(model, x[:4], y[:4], x, epochs=1, lr=0.0, log=lambda s: None)
    qvars = _quant_vars(qat)
    assert {(kind, end): float(v.numpy().max()) for v, kind, _, end in qvars if kind == "input"} == {
        ("input", "min"): 0.0, ("input", "max"): 255.0}
    initialised = (qat.predict(x.astype(np.float32), verbose=0).argmax(1) == ref).mean()
    for var, _, _, end in qvars:  # back to tfmot's defaults
        var.assign(np.full(var.shape, -6.0 if end == "min" else 6.0, np.float32))
    default = (qat.predict(x.astype(np.float32), verbose=0).argmax(1) == ref).mean()
    assert initialised >= 0.7 and initialised >= default + 0.3, (initialised, default)


def _weights(path):
    """[(op name, filter shape, scales, int8 values)] of every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    obj = fu.read_model(str(path))
    sg = obj.subgraphs[0]
    out = []
    for op in sg.operators:
        name = fu.opcode_to_name(obj, op.opcodeIndex)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            t = sg.tensors[op.inputs[1]]
            values = np.asarray(obj.buffers[t.buffer].data, np.uint8).view(np.int8).reshape(t.shape)
            out.append((name, tuple(t.shape), list(t.quantization.scale), values))
    return out


def test_per_tensor_pqat_quantizes_every_kernel_with_one_scale(block_bundle):
    """Before BatchNorm was folded first, the kernels of convolutions followed by ReLU6 trained
    unquantized (tfmot's Conv2D -> ReLU transform) and came out per-channel, unlike what QAT trained."""
    e = block_bundle.entry("pqat_int8")
    assert e.status == "ok", e.error
    qat = block_bundle.info["optimisation"]["qat"]
    assert qat["per_channel"] is False and e.quantization["per_channel"] is False
    weights = _weights(block_bundle.root / e.path)
    assert len(weights) > 40 and all(len(scales) == 1 for _, _, scales, _ in weights)
    assert qat["sparsity_after"] == pytest.approx(qat["sparsity_before"], abs=0.002)
    # the file computes what the QAT Keras model computed
    assert abs(e.metrics["top1"] - qat["keras_top1"]) <= 0.05
    assert e.quantization["raw_pixels"] is True and e.extra["edgetpu_compat"]["compatible"] is True


@pytest.mark.parametrize("fmt", ["pruned_int8", "pqat_int8"])
def test_block_pruning_leaves_runs_of_zeros_in_the_file(block_bundle, fmt):
    e = block_bundle.entry(fmt)
    assert e.status == "ok", e.error
    assert block_bundle.info["optimisation"]["prune"]["block"] == 16
    assert e.extra["sparsity"] == pytest.approx(0.5, abs=0.02)
    zeros = in_runs = 0
    for name, shape, _, values in _weights(block_bundle.root / e.path):
        if name == "DEPTHWISE_CONV_2D" or shape[-1] % 16:
            continue
        runs = values.reshape(shape[0], -1, 16)  # each output channel's weights as stored, in runs of 16
        zeros += int((runs == 0).sum())
        in_runs += int((runs == 0).all(-1).sum()) * 16
    # nearly every zero sits in a whole zero run (a few small survivors also round to 0 in int8)
    assert zeros and in_runs / zeros >= 0.9
