"""Every listed backbone works end to end at a tiny size: weights from a local file (no hub is reachable),
a few training steps, full-int8 conversion, and `edgelite run` on the held-out photos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.train.conftest import make_shapes_dataset

REPO = Path(__file__).resolve().parents[2]
KERAS_APPS = {"mobilenet_v3_small": "MobileNetV3Small", "mobilenet_v3_large": "MobileNetV3Large",
              "efficientnet_b0": "EfficientNetB0"}
SIZE = 32


def _local_weights(backbone: str, path: Path) -> Path:
    """A random-init keras.applications backbone's weights saved to a file, as an offline user would bring."""
    from edgelite.train.tfenv import import_keras

    keras = import_keras()
    extra = {"include_preprocessing": True} if backbone.startswith("mobilenet_v3") else {}
    base = getattr(keras.applications, KERAS_APPS[backbone])(input_shape=(SIZE, SIZE, 3), include_top=False,
                                                             weights=None, **extra)
    base.save_weights(str(path))
    return path


def _edgelite(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "edgelite", *args], capture_output=True, text=True, env=env, cwd=cwd,
                       timeout=900)
    assert p.returncode == 0, f"edgelite {args[0]} failed:\n{p.stderr[-3000:]}"
    return p


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list(KERAS_APPS))
def test_backbone_trains_from_a_local_file_converts_to_int8_and_runs(backbone, tmp_path):
    data = make_shapes_dataset(tmp_path / "shapes", per_class=12, seed=3, nested=False)
    weights = _local_weights(backbone, tmp_path / f"{backbone}.h5")
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    _edgelite("train", str(data), "--out", str(run), "--backbone", backbone, "--image-size", str(SIZE),
              "--weights", str(weights), "--epochs", "1", "--fine-tune-epochs", "1", "--batch-size", "8",
              "--seed", "0", cwd=tmp_path)
    from edgelite.train.rundir import CONFIG

    cfg = yaml.safe_load((run / CONFIG).read_text())
    assert cfg["backbone"] == backbone and cfg["weights"] == str(weights)
    _edgelite("convert", str(run), "--out", str(bundle), "--formats", "int8", "--calibration", "16", "-q",
              cwd=tmp_path)
    manifest = json.loads((bundle / "edgelite.json").read_text())
    (entry,) = [m for m in manifest["models"] if m["precision"] == "int8"]
    assert entry.get("status", "ok") == "ok", entry
    out = tmp_path / "results.jsonl"
    _edgelite("run", str(bundle), "--source", str(data / "circle"), "--format", "int8", "--json", str(out),
              "--print-every", "0", cwd=tmp_path)
    lines = [json.loads(s) for s in out.read_text().splitlines()]
    assert len(lines) == 12
    assert all(line["top_k"][0]["label"] in ("circle", "square", "triangle") for line in lines)


@pytest.mark.parametrize("weights", ["local", None])
def test_efficientnet_b0_keeps_imagenet_normalisation_without_imagenet_weights(weights, tmp_path):
    """tf-keras drops B0's last 1/sqrt(std) rescaling unless weights="imagenet": the stem must still
    compute (x/255 - mean) / std, as with the ImageNet weights, for --weights PATH and --weights none."""
    from edgelite.train.backbones import IMAGENET_MEAN_RGB, IMAGENET_STDDEV_RGB
    from edgelite.train.model import build_classifier
    from edgelite.train.tfenv import import_keras

    keras = import_keras()
    path = str(_local_weights("efficientnet_b0", tmp_path / "b0.h5")) if weights == "local" else None
    model = build_classifier("efficientnet_b0", 3, SIZE, weights=path)
    norm = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    stem = keras.Model(model.inputs, norm.output)
    pixels = np.random.default_rng(0).integers(0, 256, (1, SIZE, SIZE, 3)).astype(np.float32)
    expected = (pixels / 255.0 - np.array(IMAGENET_MEAN_RGB)) / np.array(IMAGENET_STDDEV_RGB)
    np.testing.assert_allclose(stem.predict(pixels, verbose=0), expected, rtol=1e-4, atol=1e-4)
