"""`--formats imx500`: the Raspberry Pi AI Camera (Sony IMX500) through Sony's toolchain in its own venv.

The real path (MCT post-training quantization + imxconv-tf, ~1-2 min on the tiny model) runs whenever the
IMX500 venv exists — `make test` builds it (`make imx500-venv`, ~1.5 min) — and skips, saying so, where it
does not. The model rewrite and the missing-venv error need no venv and always run.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from edgelite.bundle import Bundle
from edgelite.cli import main
from edgelite.convert import convert
from edgelite.convert import imx500 as imx
from tests.convert.convertkit import TINY_SIZE, tiny_model


@pytest.fixture
def no_venv(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELITE_IMX500_VENV", str(tmp_path / "no-venv"))


def test_without_the_venv_convert_says_make_imx500_venv(tiny, tmp_path, no_venv, capsys):
    """`--formats imx500` alone, no toolchain: one line naming the make target, exit 2, before any work."""
    rc = main(["convert", str(tiny["model"]), "--data", str(tiny["data"]), "--out", str(tmp_path / "b"),
               "--formats", "imx500", "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "make imx500-venv" in err and not (tmp_path / "b").exists()


def test_without_the_venv_the_other_formats_still_convert(tiny, tmp_path, no_venv):
    """`--formats int8,imx500` without the toolchain: int8 is in the bundle, imx500 is marked, never faked."""
    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="int8,imx500", calibration=16,
                verbose=False)
    assert b.entry("int8").status == "ok"
    e = b.entry("imx500")
    assert e.status == "export failed" and "make imx500-venv" in e.error and e.path is None
    assert not (tmp_path / "b" / imx.PACKED).exists()


def test_rescaling_and_normalization_become_an_exact_depthwise_conv():
    """The converter refuses Rescaling; a 1x1 DepthwiseConv2D computes the same per-channel x * a + b."""
    import tf_keras as keras

    inp = keras.Input((TINY_SIZE, TINY_SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="rescale")(inp)
    x = keras.layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.052, 0.050, 0.051], name="norm")(x)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="head")(x))
    images = np.random.default_rng(0).integers(0, 256, (6, TINY_SIZE, TINY_SIZE, 3)).astype(np.uint8)
    ready, rewritten = imx.sensor_ready(model, images)
    assert rewritten == ["norm", "rescale"]
    kinds = {layer.name: type(layer).__name__ for layer in ready.layers}
    assert kinds["rescale"] == kinds["norm"] == "DepthwiseConv2D"
    assert np.abs(ready.predict(images.astype(np.float32), verbose=0)
                  - model.predict(images.astype(np.float32), verbose=0)).max() < 1e-5


def test_exported_keras_file_has_the_keras_2_15_config(tmp_path):
    """The .keras the venv loads: no tf_keras module paths, no InputLayer `optional` (Keras 2.15 knows neither)."""
    path = tmp_path / "float.keras"
    imx.save_for_keras215(tiny_model(), path)
    with zipfile.ZipFile(path) as z:
        text = z.read("config.json").decode()
    assert "tf_keras" not in text and '"optional"' not in text
    assert '"module": "keras.src' in text and '"class_name": "InputLayer"' in text


# ------------------------------------------------------------------------------------------ the real toolchain
@pytest.fixture(scope="session")
def imx500_bundle(tiny, tmp_path_factory):
    if imx.find_venv() is None:
        pytest.skip(f"no IMX500 toolchain venv at {imx.venv_dir()} (make imx500-venv builds it)")
    return convert(tiny["model"], tmp_path_factory.mktemp("imx500") / "b", data=tiny["data"],
                   formats="int8,imx500", calibration=32, verbose=False)


def test_imx500_bundle_has_a_validated_packer_zip_with_its_memory_report(imx500_bundle):
    """`edgelite convert RUN --formats int8,imx500`: packerOut.zip (sha256 in the manifest) with the MCT model's
    top-1, its Δ and interval against float, and the converter's verdict on the sensor's memory."""
    b = Bundle.load(imx500_bundle.root)
    e = b.entry("imx500")
    assert e.status == "ok" and e.path == "packerOut.zip" and e.format == "imx500", e.error
    path = b.verified_path(e)  # size and sha256 as the manifest says
    with zipfile.ZipFile(path) as z:
        assert z.namelist()
    m = e.metrics
    assert m["top1"] == pytest.approx(1.0) and m["delta"] == pytest.approx(0.0) and len(m["delta_ci"]) == 2
    assert m["images"] == len(b.heldout()[1]) and "MCT" in m["runtime"]
    info = e.extra["imx500"]
    assert info["converter"]["memory"]["fits"] is True and info["converter"]["memory"]["available"] == "8.00MB"
    assert info["rewritten"] == ["rescaling"]
    assert info["float_max_diff"] < 1e-4  # the venv's Keras 2.15 runs our float model exactly
    assert info["toolchain"]["mct"] and info["converter"]["converter_version"]
    assert b.entry("int8").status == "ok"


def test_run_and_bench_never_pick_the_sensor_model_by_default(imx500_bundle):
    """packerOut.zip runs only on the camera: the CPU's default choice stays the int8 .tflite."""
    b = Bundle.load(imx500_bundle.root)
    assert b.select().name == "int8"
    assert json.loads((b.root / "edgelite.json").read_text())["models"][-1]["name"] == "imx500"


def test_a_layer_the_sensor_cannot_run_fails_the_format_naming_it(tiny, tmp_path):
    """A head with an ELU (the IMX500 runs relu, swish, sigmoid, ... not elu): imx500 is marked `export failed`
    with the layer setting the converter refused and what it supports; int8 is unaffected."""
    if imx.find_venv() is None:
        pytest.skip(f"no IMX500 toolchain venv at {imx.venv_dir()} (make imx500-venv builds it)")
    import tf_keras as keras

    model = tiny_model(10.0, extra_layer=keras.layers.Activation("elu", name="elu"))
    model.save(tmp_path / "elu.keras")
    b = convert(tmp_path / "elu.keras", tmp_path / "b", data=tiny["data"], formats="int8,imx500", calibration=16,
                verbose=False)
    e = b.entry("imx500")
    assert e.status == "export failed" and e.path is None
    assert e.error.startswith("imx500: the IMX500 cannot run activation=elu") and "'relu'" in e.error, e.error
    assert "\n" not in e.error and "logger.py" not in e.error
    assert b.entry("int8").status == "ok"
