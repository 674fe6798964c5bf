"""--auto-qat: when post-training int8 loses more than the threshold, convert quantization-aware trains as well
and the device runs qat_int8 — but only when it scores above int8. Uses the `faint` tiny classifier: int8's
1/256 output steps tie its small probabilities on a quarter of the images (0.75 against float 1.00)."""

from __future__ import annotations

from edgelite.bundle import Bundle
from edgelite.cli import main
from edgelite.convert import convert


def test_int8_missing_the_threshold_gets_qat_and_the_device_runs_it(tiny, tmp_path):
    # --max-drop 1 as well: int8 fails it, qat_int8 passes, so the conversion succeeds
    b = convert(tiny["faint"], tmp_path / "b", data=tiny["data"], formats="int8", calibration=16, qat_lr=0.05,
                qat_epochs=3, max_drop=1.0, verbose=False)
    int8, qat = b.entry("int8"), b.entry("qat_int8")
    assert int8.metrics["top1"] == 0.75 and int8.status == "validation failed"  # it did miss --max-drop
    assert qat.status == "ok" and qat.metrics["top1"] == 1.0 and (b.root / qat.path).is_file()
    assert b.select().name == "qat_int8"
    saved = Bundle.load(b.root)
    assert saved.select().name == "qat_int8"
    assert saved.info["optimisation"]["qat"]["auto"] == {"int8_delta": -25.0, "threshold": 0.5, "kept": True}
    assert "qat_int8" in saved.info["settings"]["formats"]
    log = (b.root / "convert.log").read_text()
    assert "int8 lost 25.0 top-1 points (more than 0.5): quantization-aware training too" in log


def test_a_qat_model_no_better_than_int8_is_not_kept(tiny, tmp_path):
    b = convert(tiny["faint"], tmp_path / "b", data=tiny["data"], formats="int8", calibration=16, qat_epochs=1,
                verbose=False)  # the default QAT learning rate (1e-5) barely moves this model
    qat = b.entry("qat_int8")
    assert qat.status == "skipped" and qat.path is None and "not above int8's 0.750" in qat.error
    assert not (b.root / "model_qat_int8.tflite").exists()
    assert b.select().name == "int8" and b.available() == ["int8"]
    assert Bundle.load(b.root).info["optimisation"]["qat"]["auto"]["kept"] is False


def test_no_auto_qat_and_a_higher_threshold_keep_post_training_int8(tiny, tmp_path, capsys):
    for i, flags in enumerate((["--no-auto-qat"], ["--auto-qat", "30"])):
        out = tmp_path / f"b{i}"
        rc = main(["convert", str(tiny["faint"]), "--data", str(tiny["data"]), "--out", str(out), "--formats", "int8",
                   "--calibration", "16", "-q", *flags])
        assert rc == 0, capsys.readouterr().err
        b = Bundle.load(out)
        assert [m.name for m in b.models] == ["int8"] and b.entry("int8").metrics["top1"] == 0.75
        assert "qat" not in b.info["optimisation"]
