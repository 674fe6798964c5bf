"""Standard TFLite Metadata in every .tflite: our own reader, TensorFlow's flatbuffer tools, LiteRT, and the
real outside client, MediaPipe Tasks' ImageClassifier (in its own venv, built once in ~/.cache/edgelite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgelite.bundle import Bundle
from edgelite.convert.tflite_metadata import (
    LABELS_FILE,
    STANDARD_NAME,
    read_associated_files,
    read_model_metadata,
    read_standard_metadata,
    standard_metadata,
)

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "scripts" / "mediapipe_client.py"


@pytest.fixture(scope="module")
def tiny_bundles(tiny, tmp_path_factory):
    """The tiny colour classifier converted twice: uint8 in/out (default) and int8 with float32 in/out."""
    from edgelite.convert import convert

    root = tmp_path_factory.mktemp("stdmeta")
    return {io: convert(tiny["model"], root / io, data=tiny["data"], formats="fp32,int8", calibration=16,
                        io_type=io, verbose=False)
            for io in ("uint8", "float32")}


def test_metadata_flatbuffer_round_trips():
    fb = standard_metadata({"labels": ["a", "b"], "input": {"height": 96, "width": 64}, "model": "int8",
                            "precision": "int8", "source": "flowers", "backbone": "mobilenet_v2",
                            "quantization": {"input": {"dtype": "float32"}}})
    meta = read_standard_metadata(fb)
    assert meta["name"] == "flowers (int8)" and "mobilenet_v2" in meta["description"] and meta["version"]
    assert meta["min_parser_version"] == "1.0.0"
    assert meta["input"] == {"name": "image", "color_space": "RGB", "width": 64, "height": 96,
                             "mean": [0.0], "std": [1.0]}  # float input: raw 0..255 pixels, no rescaling
    assert meta["output"] == {"name": "probability", "label_files": [LABELS_FILE]}


def test_every_tflite_carries_standard_metadata_and_its_labels_file(tiny_bundles):
    from tensorflow.lite.tools import flatbuffer_utils as fu

    for io, b in tiny_bundles.items():
        for e in b.models:
            data = (b.root / e.path).read_bytes()
            meta = read_model_metadata(data)
            assert meta["labels"] == b.labels, (io, e.name)
            assert (meta["input"]["width"], meta["input"]["height"]) == (b.input.width, b.input.height)
            # normalisation is written only where a reader would feed floats
            assert ("mean" in meta["input"]) == (e.quantization["input"]["dtype"] == "float32"), (io, e.name)
            assert read_associated_files(data) == {LABELS_FILE: ("\n".join(b.labels) + "\n").encode()}
            # TensorFlow's own flatbuffer reader sees both entries; our edgelite JSON is still there
            names = {m.name.decode() for m in fu.convert_bytearray_to_object(bytearray(data)).metadata}
            assert {STANDARD_NAME, "edgelite", "min_runtime_version"} <= names


def test_packed_files_still_load_validate_and_verify(tiny_bundles):
    from edgelite.device.runtime import load_from_bundle

    b = Bundle.load(tiny_bundles["uint8"].root)
    x, y = b.heldout()
    for name in ("fp32", "int8"):
        assert b.entry(name).status == "ok" and b.entry(name).metrics["top1"] == 1.0
        model, _ = load_from_bundle(b, name)  # sha256 checked over the whole file, zip included
        assert all(model.classify(img).argmax() == label for img, label in zip(x, y, strict=True))


def test_reembedding_replaces_rather_than_stacks(tiny_bundles):
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from edgelite.convert.metadata import embed_metadata, read_metadata

    path = tiny_bundles["uint8"].root / "model_int8.tflite"
    data = path.read_bytes()
    meta = read_metadata(data)
    assert len(embed_metadata(data, meta)) == len(data)  # same facts, same size: nothing stacked
    again = embed_metadata(data, {**meta, "labels": ["w", "x", "y", "z"]})
    names = [m.name.decode() for m in fu.convert_bytearray_to_object(bytearray(again)).metadata]
    assert sorted(names) == sorted(set(names))  # one entry each
    assert read_model_metadata(again)["labels"] == ["w", "x", "y", "z"]
    assert list(read_associated_files(again)) == [LABELS_FILE]


# ------------------------------------------------------------------------------------------ MediaPipe
@pytest.fixture(scope="session")
def mediapipe_python() -> Path:
    """MediaPipe's venv (built once, ~3 min); skipped with the reason when it cannot be installed here."""
    r = subprocess.run([sys.executable, str(CLIENT), "setup"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "mediapipe venv setup failed")
    return Path(r.stdout.strip())


def _mediapipe(py: Path, model: Path, npz: Path) -> dict:
    r = subprocess.run([str(py), str(CLIENT), "classify", str(model), str(npz)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def _agreement(py: Path, b: Bundle, name: str, tmp_path: Path) -> tuple[float, dict]:
    from edgelite.device.runtime import load_from_bundle

    x, _ = b.heldout()
    npz = tmp_path / f"{name}.npz"
    np.savez(npz, images=x)
    mp = _mediapipe(py, b.root / b.entry(name).path, npz)
    model, _ = load_from_bundle(b, name)
    litert = [int(model.classify(img).argmax()) for img in x]
    assert [t[1] for t in mp["top1"]] == [b.labels[i] for i, *_ in mp["top1"]]  # names, by index
    assert {int(k): v for k, v in mp["names"].items()} == dict(enumerate(b.labels))
    return float(np.mean([t[0] == i for t, i in zip(mp["top1"], litert, strict=True)])), mp


@pytest.mark.slow
def test_mediapipe_reads_labels_by_name_and_agrees_with_litert(mediapipe_python, base_bundle, tmp_path):
    b = Bundle.load(base_bundle.root)
    for name in ("int8", "fp32"):
        agreement, mp = _agreement(mediapipe_python, b, name, tmp_path)
        assert len(mp["top1"]) == b.info["heldout"]["count"] > 0
        assert agreement >= 0.98, (name, agreement)


def test_mediapipe_feeds_float_input_models_raw_pixels(mediapipe_python, tiny_bundles, tmp_path):
    b = Bundle.load(tiny_bundles["float32"].root)
    assert b.entry("int8").quantization["input"]["dtype"] == "float32"
    agreement, _ = _agreement(mediapipe_python, b, "int8", tmp_path)
    assert agreement == 1.0
