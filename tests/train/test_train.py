"""Fine-tuning end to end on a small generated dataset (one trained run per session)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from edgelite.train.errors import TrainError

pytestmark = pytest.mark.slow


def test_fine_tune_is_well_above_chance(trained_run):
    acc = trained_run.metrics["test"]["accuracy"]
    assert acc >= 0.8, f"3-class shapes, chance 0.33: got {acc}"


def test_run_directory_contents(trained_run):
    p = trained_run.path
    for name in ("model.keras", "labels.txt", "config.yaml", "split.json", "metrics.json", "history.csv",
                 "curves.png", "confusion_matrix.png", "skipped.txt"):
        assert (p / name).is_file(), name
    assert (p / "labels.txt").read_text().split() == ["circle", "square", "triangle"]
    cfg = yaml.safe_load((p / "config.yaml").read_text())
    assert cfg["backbone"] == "efficientnet_lite0" and cfg["image_size"] == 64 and cfg["weights"] == "imagenet"
    m = json.loads((p / "metrics.json").read_text())
    assert set(m["test"]["per_class"]) == {"circle", "square", "triangle"}
    assert {"precision", "recall", "f1", "support"} <= set(m["test"]["per_class"]["circle"])
    assert np.asarray(m["test"]["confusion_matrix"]).sum() == m["images"]["test"]
    rows = list(csv.DictReader(open(p / "history.csv")))
    assert [r["phase"] for r in rows][-1] == "2" and "val_loss" in rows[0]
    assert (p / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_model_is_flat_takes_raw_pixels_and_has_no_augmentation(trained_run):
    import tf_keras as keras

    from edgelite.train.model import assert_flat
    from edgelite.train.rundir import load_run_model

    model = load_run_model(trained_run.path)
    assert_flat(model)
    assert model.input_shape == (None, 64, 64, 3)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert not any(k.startswith("Random") for k in kinds), kinds
    assert "Rescaling" in kinds  # preprocessing inside the graph
    assert [layer.name for layer in model.layers[-3:]] == ["head_pool", "head_dropout", "head_dense"]
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    # raw 0..255 pixels in, probabilities out; predictions are deterministic (no augmentation at inference)
    from edgelite.train.rundir import load_split_images

    x, y, _ = load_split_images(trained_run.path, "test")
    p1 = model.predict(x.astype(np.float32), verbose=0)
    p2 = model.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(p1, p2)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, atol=1e-4)
    assert (p1.argmax(1) == y).mean() == pytest.approx(trained_run.metrics["test"]["accuracy"], abs=1e-3)


def test_backbone_frozen_in_phase_1_and_batchnorm_frozen_in_phase_2():
    import tf_keras as keras

    from edgelite.train.model import build_classifier, set_phase

    model = build_classifier("efficientnet_lite0", 3, 64, weights=None)
    set_phase(model, "efficientnet_lite0", 1)
    assert [w.name.split("/")[0] for w in model.trainable_weights] == ["head_dense", "head_dense"]
    info = set_phase(model, "efficientnet_lite0", 2, unfreeze=2)
    assert info["unfrozen_blocks"] == 2 and info["blocks"] == 16
    trainable = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert "block7a_project_conv" in trainable and "top_conv" in trainable
    assert "block5a_expand_conv" not in trainable and "stem_conv" not in trainable
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable for layer in model.layers)


def test_resume_continues_from_last_checkpoint(shapes_dir, tmp_path):
    from edgelite.train import train

    out = tmp_path / "run"
    common = dict(backbone="mobilenet_v2", image_size=32, weights="none", batch_size=16, seed=1, verbose=0)
    train(shapes_dir, out, epochs=1, fine_tune_epochs=0, **common)
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert (state["phase"], state["epoch"]) == (1, 1)
    run = train(None, out, resume=True, epochs=2, fine_tune_epochs=0, verbose=0)
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [(r["phase"], r["epoch"]) for r in rows] == [("1", "1"), ("1", "2")]  # epoch 1 not redone
    assert run.metrics["test"]["n"] > 0


def test_existing_run_needs_resume_or_overwrite(trained_run, shapes_dir):
    from edgelite.train import train

    with pytest.raises(TrainError, match="--resume .* --overwrite"):
        train(shapes_dir, trained_run.path, epochs=1, fine_tune_epochs=0, verbose=0)


def test_config_yaml_then_cli_override(shapes_dir, tmp_path):
    from edgelite.train.finetune import resolve_config

    f = tmp_path / "train.yaml"
    f.write_text("backbone: mobilenet_v2\nimage-size: 96\nepochs: 7\nlr: 0.01\n")
    cfg = resolve_config(shapes_dir, tmp_path / "o", str(f), epochs=2)
    assert (cfg.backbone, cfg.image_size, cfg.epochs, cfg.lr) == ("mobilenet_v2", 96, 2, 0.01)
    f.write_text("epochz: 3\n")
    with pytest.raises(TrainError, match="unknown setting.*epochz"):
        resolve_config(shapes_dir, tmp_path / "o", str(f))


def test_weights_from_a_local_file_for_offline_users(tmp_path):
    """keras.applications backbones: --weights PATH loads a local file instead of downloading."""
    from edgelite.train.model import build_classifier

    src = build_classifier("mobilenet_v2", 3, 32, weights=None)
    import tf_keras as keras

    base = keras.Model(src.input, src.get_layer("out_relu").output)
    path = tmp_path / "mobilenet_v2_notop.h5"
    base.save_weights(str(path))
    dst = build_classifier("mobilenet_v2", 3, 32, weights=str(path))
    a = src.get_layer("Conv1").get_weights()[0]
    np.testing.assert_array_equal(dst.get_layer("Conv1").get_weights()[0], a)


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "edgelite", *args], capture_output=True, text=True, timeout=300, **kw)


@pytest.mark.parametrize("args, message", [
    (["train", "/no/such/dir", "--out", "OUT"], "does not exist"),
    (["train", "DATA", "--out", "OUT", "--weights", "/no/file.h5"], "--weights /no/file.h5: no such file"),
    (["train", "DATA", "--out", "OUT", "--epochs", "0", "--fine-tune-epochs", "0"], "not both 0"),
])
def test_cli_errors_are_one_line(args, message, shapes_dir, tmp_path):
    args = [str(shapes_dir) if a == "DATA" else str(tmp_path / "o") if a == "OUT" else a for a in args]
    r = run_cli(*args)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert err and message in err[-1] and err[-1].startswith("edgelite train: error:"), r.stderr
    assert "Traceback" not in r.stderr


def test_cli_unknown_backbone_is_rejected_by_argparse(shapes_dir, tmp_path):
    r = run_cli("train", str(shapes_dir), "--out", str(tmp_path / "o"), "--backbone", "resnet9000")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_help_does_not_import_tensorflow():
    code = ("import sys; from edgelite.cli import build_parser; build_parser().format_help(); "
            "import edgelite.train, edgelite.train.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_start(shapes_dir, tmp_path):
    old = tmp_path / "run"
    old.mkdir()
    (old / "model.keras").write_text("the previous run")
    (old / "config.yaml").write_text("epochs: 1\n")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an HDF5 file")
    for args in (["train", str(tmp_path / "no-such-data"), "--out", str(old), "--overwrite"],
                 ["train", str(shapes_dir), "--out", str(old), "--overwrite", "--backbone", "mobilenet_v2",
                  "--image-size", "32", "--weights", str(garbage)]):
        r = run_cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert (old / "model.keras").read_text() == "the previous run"
    assert "--weights" in r.stderr and "cannot load" in r.stderr


def test_overwrite_never_empties_a_folder_that_is_not_a_run(shapes_dir, tmp_path):
    """Issue 25, item 2: `train --out photos --overwrite` (a slip of the finger) emptied the folder with
    rmtree. --overwrite replaces only a run: anything else is refused in one line, nothing touched."""
    photos = tmp_path / "photos"
    (photos / "cats").mkdir(parents=True)
    (photos / "cats" / "1.jpg").write_bytes(b"a photo")
    r = run_cli("train", str(shapes_dir), "--out", str(photos), "--overwrite")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert f"--out {photos} holds files that are not a run; choose a new or empty folder" in r.stderr
    assert (photos / "cats" / "1.jpg").read_bytes() == b"a photo"


@pytest.mark.parametrize("yaml_text, message", [
    ("epochs: ten\n", "epochs must be int, got 'ten'"),
    ("image-size: big\n", "image-size must be int"),
    ("1: 2\n", "unknown setting"),
    ("augment: 3\n", "augment must be bool"),
])
def test_bad_config_values_are_one_line(shapes_dir, tmp_path, yaml_text, message):
    f = tmp_path / "train.yaml"
    f.write_text(yaml_text)
    r = run_cli("train", str(shapes_dir), "--out", str(tmp_path / "o"), "--config", str(f))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_resume_refuses_a_changed_setting_but_accepts_the_same_command(shapes_dir, tmp_path):
    from edgelite.train import train

    out = tmp_path / "run"
    common = dict(backbone="mobilenet_v2", image_size=32, weights="none", batch_size=16, seed=1, verbose=0)
    train(shapes_dir, out, epochs=1, fine_tune_epochs=0, **common)
    with pytest.raises(TrainError, match="only --epochs and --fine-tune-epochs can change.*--batch-size"):
        train(shapes_dir, out, resume=True, epochs=2, fine_tune_epochs=0, **{**common, "batch_size": 8})
    run = train(shapes_dir, out, resume=True, epochs=2, fine_tune_epochs=0, **common)  # same command again
    assert [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))] == ["1", "2"]
    assert run.metrics["test"]["n"] > 0
