"""Every error a user can cause is one clear line; one failing format never loses the others."""

from __future__ import annotations

import shutil
import sys

import pytest

from edgelite.bundle import Bundle
from edgelite.cli import main
from edgelite.convert import convert
from edgelite.convert.errors import ConvertError, GateFailed


def _cli(capsys, *argv) -> tuple[int, str]:
    rc = main(["convert", *map(str, argv), "-q"])
    err = capsys.readouterr().err.strip()
    return rc, err


def test_missing_run_dir(tmp_path, capsys):
    rc, err = _cli(capsys, tmp_path / "nope", "--out", tmp_path / "b")
    assert rc == 2
    assert err.startswith("edgelite convert: error:") and "does not exist" in err and len(err.splitlines()) == 1


def test_incomplete_run_dir(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"x")
    with pytest.raises(ConvertError, match=r"not a complete run directory: missing labels.txt, config.yaml, split.json"):
        convert(tmp_path / "run", tmp_path / "b", verbose=False)


@pytest.mark.slow
def test_corrupt_model_in_run_dir(run_dir, tmp_path, capsys):
    bad = tmp_path / "run"
    shutil.copytree(run_dir, bad, ignore=shutil.ignore_patterns("checkpoints", "*.png"))
    (bad / "model.keras").write_bytes((run_dir / "model.keras").read_bytes()[:5000])
    rc, err = _cli(capsys, bad, "--out", tmp_path / "b")
    assert rc == 2 and "cannot load" in err and "corrupt" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_labels_edited_by_hand(run_dir, tmp_path):
    bad = tmp_path / "run"
    shutil.copytree(run_dir, bad, ignore=shutil.ignore_patterns("checkpoints", "*.png"))
    with open(bad / "labels.txt", "a") as f:
        f.write("extra-class\n")
    with pytest.raises(ConvertError, match=r"labels.txt \(11 labels\) disagrees with split.json"):
        convert(bad, tmp_path / "b", verbose=False)


def test_labels_model_mismatch(tiny, tmp_path):
    data = tmp_path / "photos"
    shutil.copytree(tiny["data"], data)
    shutil.rmtree(data / "yellow")  # 3 class folders, the model has 4 outputs
    with pytest.raises(ConvertError, match=r"labels/model mismatch: --data .* names 3 classes but model.keras outputs 4"):
        convert(tiny["model"], tmp_path / "b", data=data, formats="fp32", verbose=False)


def test_model_file_needs_data(tiny, tmp_path):
    with pytest.raises(ConvertError, match="pass --data DIR"):
        convert(tiny["model"], tmp_path / "b", verbose=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"formats": "fp32,tensorrt"}, "unknown format 'tensorrt'"),
    ({"formats": "pruned_int8"}, "needs --prune"),
    ({"prune": 1.5}, "sparsity must be between 0 and 1"),
    ({"io_type": "int4"}, "--io-type"),
    ({"max_drop": -1}, "--max-drop"),
    ({"auto_qat": -0.5}, "--auto-qat -0.5"),
    ({"prune": 0.5, "prune_block": 0}, "--prune-block 0"),
    ({"prune_block": 4}, "--prune-block 4 needs --prune"),
    ({"opset": 19}, "--opset 19"),
    ({"prune": 0.5, "prune_lr": 0}, "--prune-lr and --qat-lr must be above 0"),
    ({"qat": True, "qat_lr": -1e-5}, "--prune-lr and --qat-lr must be above 0"),
])
def test_bad_options(tiny, tmp_path, kwargs, match):
    with pytest.raises(ConvertError, match=match):
        convert(tiny["model"], tmp_path / "b", data=tiny["data"], verbose=False, **kwargs)


def test_out_must_not_clobber_a_non_bundle(tiny, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(ConvertError, match="exists and is not a bundle"):
        convert(tiny["model"], tmp_path / "b", data=tiny["data"], verbose=False)
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"


def test_missing_runtime_marks_that_format_and_keeps_the_others(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # `import tf2onnx` raises ImportError, as when not installed
    rc, err = _cli(capsys, tiny["model"], "--data", tiny["data"], "--out", tmp_path / "b", "--formats", "fp32,onnx")
    assert rc == 1 and "onnx (export failed: tf2onnx is not installed (pip install 'edgelite[onnx]'))" in err
    b = Bundle.load(tmp_path / "b")
    assert b.entry("fp32").status == "ok" and b.entry("fp32").metrics["top1"] == 1.0
    assert b.entry("onnx").status == "export failed" and b.entry("onnx").path is None
    # not asked for explicitly (default formats): the same gap is 'skipped', not a failure
    bundle = convert(tiny["model"], tmp_path / "d", data=tiny["data"], verbose=False, calibration=16)
    assert bundle.entry("onnx").status == "skipped" and "tf2onnx is not installed" in bundle.entry("onnx").error


def test_only_formats_whose_runtime_is_missing_is_a_usage_error_naming_the_extra(tiny, tmp_path, monkeypatch,
                                                                                 capsys):
    """`--formats onnx` without tf2onnx: nothing could be exported, so stop before any work (exit 2)."""
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    rc, err = _cli(capsys, tiny["model"], "--data", tiny["data"], "--out", tmp_path / "b", "--formats", "onnx")
    assert rc == 2
    assert err == ("edgelite convert: error: --formats onnx needs tf2onnx, which is not installed: "
                   "pip install 'edgelite[onnx]'")
    assert not (tmp_path / "b").exists()


def test_layer_tfmot_cannot_handle_fails_only_qat(tmp_path, tiny, capsys):
    import tf_keras as keras

    from tests.convert.convertkit import tiny_model

    model = tiny_model(extra_layer=keras.layers.LayerNormalization(name="odd_norm"))
    path = tmp_path / "ln.keras"
    model.save(path)
    rc, err = _cli(capsys, path, "--data", tiny["data"], "--out", tmp_path / "b", "--formats", "fp32", "--qat",
                   "--qat-epochs", "1", "--calibration", "16")
    assert rc == 1
    assert "tfmot cannot quantize layer 'odd_norm' (LayerNormalization)" in err and len(err.splitlines()) == 1
    b = Bundle.load(tmp_path / "b")
    assert b.entry("fp32").status == "ok" and b.entry("qat_int8").status == "export failed"


def test_gate_fails_naming_format_and_collapsed_classes(tiny, tmp_path, capsys):
    """Float is right on every held-out image; int8's 1/256 output steps tie all classes -> class 0 (blue) wins."""
    rc, err = _cli(capsys, tiny["collapse"], "--data", tiny["data"], "--out", tmp_path / "b", "--formats",
                   "fp32,int8", "--max-drop", "1", "--calibration", "16")
    assert rc == 3
    assert err.startswith("edgelite convert: error: int8 lost") and "--max-drop 1" in err
    # every class but the first (the tie-break winner) collapsed
    assert "collapsed classes: " in err and all(f"{c} 1.00->0.00" in err for c in ("green", "red", "yellow"))
    b = Bundle.load(tmp_path / "b")  # the bundle is still written, the failing model marked
    assert b.entry("fp32").status == "ok"
    assert b.entry("int8").status == "validation failed" and b.select().name == "fp32"
    assert set(b.entry("int8").metrics["collapsed"]) == {"green", "red", "yellow"}
    # --auto-qat tried quantization-aware training; it ties the classes too, fails the gate and is marked
    assert b.entry("qat_int8").status == "validation failed"
    assert b.info["optimisation"]["qat"]["auto"]["kept"] is False


def test_gate_passes_when_within_budget(tiny, tmp_path):
    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="int8", max_drop=1.0, calibration=16,
                verbose=False)
    assert b.entry("int8").status == "ok" and b.entry("int8").metrics["delta"] >= -1.0
    assert b.available() == ["int8"]  # int8 lost nothing: no quantization-aware training


def test_gate_error_carries_the_bundle(tiny, tmp_path):
    with pytest.raises(GateFailed) as exc:
        convert(tiny["collapse"], tmp_path / "b", data=tiny["data"], formats="int8", max_drop=0, calibration=16,
                auto_qat=None, verbose=False)
    assert exc.value.failures == ["int8"] and exc.value.exit_code == 3
    assert exc.value.bundle.entry("int8").status == "validation failed"


def test_rerun_replaces_the_bundle_and_keeps_nothing_stale(tiny, tmp_path):
    """--overwrite: the old formats go (nothing stale of convert's survives); a file convert did not write (a
    bench result, a note of the user's) is moved into the new bundle, never deleted (issue 25, item 2)."""
    out = tmp_path / "b"
    convert(tiny["model"], out, data=tiny["data"], formats="fp32,int8", calibration=16, verbose=False)
    (out / "bench").mkdir()
    (out / "bench" / "x86_t1.json").write_text("{}")
    (out / "model_old_experiment.tflite").write_bytes(b"mine")
    b = convert(tiny["model"], out, data=tiny["data"], formats="fp16", overwrite=True, verbose=False)
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".tflite", ".onnx")) == [
        "model_fp16.tflite", "model_old_experiment.tflite"]
    assert (out / "model_old_experiment.tflite").read_bytes() == b"mine"
    assert (out / "bench" / "x86_t1.json").read_text() == "{}"
    assert "kept in" in (out / "convert.log").read_text() and "bench" in (out / "convert.log").read_text()
    assert [m.name for m in Bundle.load(out).models] == ["fp16"] == [m.name for m in b.models]
    assert not list(tmp_path.glob(".b.*"))  # no staging or old folders left behind


def test_convert_onto_an_existing_bundle_asks_for_overwrite_and_loses_nothing(tiny, tmp_path, capsys):
    """Issue 25, item 2: `convert --out` onto a bundle silently replaced it, bench/ results and all. Now it is
    refused in one line (exit 2) before any work, as `train` does, and the bundle is untouched."""
    out = tmp_path / "b"
    convert(tiny["model"], out, data=tiny["data"], formats="fp32", verbose=False)
    (out / "bench").mkdir()
    (out / "bench" / "r.json").write_text("{}")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    rc, err = _cli(capsys, tiny["model"], "--data", tiny["data"], "--out", out, "--formats", "fp16")
    assert rc == 2 and err.count("\n") == 0
    assert f"--out {out} already holds a bundle; pass --overwrite to replace it" in err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert [m.name for m in Bundle.load(out).models] == ["fp32"]


def test_prune_block_without_prune_is_a_one_line_cli_error(tiny, tmp_path, capsys):
    rc, err = _cli(capsys, tiny["model"], "--data", tiny["data"], "--out", tmp_path / "b", "--formats", "int8",
                   "--prune-block", "4")
    assert rc == 2 and err.count("\n") == 0 and "--prune-block 4 needs --prune" in err
    assert not (tmp_path / "b").exists()


def test_the_log_says_what_int8_was_calibrated_on(tiny, tmp_path):
    """Issue 25, item 5: "calibrated on the training split" was printed even with --calibration-data."""
    photos = tiny["data"]
    b = convert(tiny["model"], tmp_path / "b", data=photos, formats="int8", calibration=16,
                calibration_data=photos, auto_qat=None, verbose=False)
    log = (b.root / "convert.log").read_text()
    assert f"int8: exporting (int8 weights and activations, calibrated on 16 images from --calibration-data {photos})" \
        in log and "training split" not in log
    b = convert(tiny["model"], tmp_path / "c", data=photos, formats="int8", calibration=16, auto_qat=None,
                verbose=False)
    assert "calibrated on 16 images from the training split)" in (b.root / "convert.log").read_text()
