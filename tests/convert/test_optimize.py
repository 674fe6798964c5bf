"""Pruning, QAT and PQAT on the real pretrained-backbone classifier (EfficientNet-Lite0, flat graph)."""

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
    from edgelite.convert.optimize import _quant_vars, quantize_aware
    from edgelite.train.data import load_split_images
    from edgelite.train.finetune import load_run_model

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
