"""Shared fixtures for tests/convert: a real trained run and real conversions, each made ONCE per session.

* ``run_dir``: EfficientNet-Lite0 (ImageNet weights) fine-tuned for a short while on 400 Fashion-MNIST
  images at 48x48 — the real train stage, ~15 s.
* ``base_bundle``: ``convert(run_dir)`` with the default formats (fp32, fp16, dynamic, int8, onnx,
  edgetpu), ``pqat_bundle``: --prune 0.5 --qat (pruned_int8 + pqat_int8), ``qat_bundle``: --qat,
  ``block_bundle``: --prune 0.5 --prune-block 16 --qat --per-tensor.
* ``tiny``: a hand-weighted colour classifier (Rescaling -> pooling -> Dense) saved as a .keras
  file, plus an image folder of solid-colour photos: converts in seconds, for the error paths.
  Its ``collapse`` twin has logits 10,000x smaller, so the float model is right but the int8 output
  (steps of 1/256) ties every class: the gate must catch that. ``faint`` (100x smaller) ties a quarter
  of the images in int8, which quantization-aware training at a high learning rate undoes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.convert.convertkit import tiny_images, tiny_model

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    from edgelite.train import train
    from edgelite.train.demo_data import write_image_folder

    root = tmp_path_factory.mktemp("convert-run")
    write_image_folder(root / "data", per_class=40, seed=0)
    run = train(root / "data", out=root / "run", backbone="efficientnet_lite0", image_size=48, epochs=2,
                fine_tune_epochs=0, weights="imagenet", verbose=0, seed=0)
    return run.path


@pytest.fixture(scope="session")
def bundles_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def base_bundle(run_dir, bundles_root):
    from edgelite.convert import convert

    return convert(run_dir, bundles_root / "base", calibration=64, verbose=False)


@pytest.fixture(scope="session")
def pqat_bundle(run_dir, bundles_root):
    from edgelite.convert import convert

    return convert(run_dir, bundles_root / "pqat", formats="pruned_int8,pqat_int8", prune=0.5, prune_epochs=1,
                   qat=True, qat_epochs=1, calibration=64, verbose=False)


@pytest.fixture(scope="session")
def block_bundle(run_dir, bundles_root):
    """--prune 0.5 --prune-block 16 --qat --per-tensor: the smallest files convert makes."""
    from edgelite.convert import convert

    return convert(run_dir, bundles_root / "block", formats="pruned_int8,pqat_int8", prune=0.5, prune_block=16,
                   prune_epochs=1, qat=True, qat_epochs=1, per_tensor=True, calibration=64, verbose=False)


@pytest.fixture(scope="session")
def qat_bundle(run_dir, bundles_root):
    from edgelite.convert import convert

    return convert(run_dir, bundles_root / "qat", formats="qat_int8", qat=True, qat_epochs=1, calibration=64,
                   verbose=False)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    data = tiny_images(root / "photos")
    paths = {"data": data}
    for name, scale in (("model", 10.0), ("collapse", 0.001), ("faint", 0.01)):
        m = tiny_model(scale)
        paths[name] = root / f"{name}.keras"
        m.save(paths[name])
    return paths
