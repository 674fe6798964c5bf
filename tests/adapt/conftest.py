"""Shared fixtures for tests/adapt, each made ONCE per session.

* ``domain``: Fashion-MNIST split per class into training photos (60) and held-out photos (40) the run
  never sees; EfficientNet-Lite0 (ImageNet weights) fine-tuned on the training photos at 48 px — the
  real train stage, with BatchNorm frozen at ImageNet statistics, i.e. the case where plain AdaBN
  fails. The held-out photos go through a synthetic camera (nearest resize, blur, colour cast, gamma,
  noise) and are split per class into an unlabeled folder and a labelled evaluation folder (disjoint);
  ``eval_clean`` holds the same evaluation photos before the camera.
* ``adapted(method)``: the run adapted with each method, cached.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE = 48
TRAIN_PER_CLASS, HELDOUT_PER_CLASS = 60, 40


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root (and the set of names): the source run must never change."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def domain(tmp_path_factory):
    from edgelite.adapt.shift import CameraShift, shifted_domain
    from edgelite.train import train
    from edgelite.train.demo_data import write_image_folder

    root = tmp_path_factory.mktemp("adapt")
    write_image_folder(root / "all", per_class=TRAIN_PER_CLASS + HELDOUT_PER_CLASS, seed=0)
    for c in sorted(p for p in (root / "all").iterdir() if p.is_dir()):
        files = sorted(c.glob("*.png"))
        for rank, i in enumerate(np.random.default_rng(1).permutation(len(files))):
            dest = root / ("heldout" if rank < HELDOUT_PER_CLASS else "data") / c.name
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(files[i], dest / files[i].name)
    unlabeled, ev = root / "unlabeled", root / "eval"
    shifted_domain(root / "heldout", unlabeled, ev, CameraShift(size=SIZE), seed=0)
    clean = root / "eval_clean"
    for f in ev.rglob("*.png"):
        (clean / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "heldout" / f.parent.name / f.name, clean / f.parent.name / f.name)
    run = train(root / "data", out=root / "run", backbone="efficientnet_lite0", image_size=SIZE, epochs=3,
                fine_tune_epochs=1, seed=0, verbose=0)
    return types.SimpleNamespace(root=root, run=run.path, unlabeled=unlabeled, eval=ev, eval_clean=clean,
                                 labels=run.labels, hashes=tree_hashes(run.path))


@pytest.fixture(scope="session")
def adapted(domain, tmp_path_factory):
    """adapted(method) -> edgelite.adapt.core.Adapted, adapted once per method with --eval."""
    from edgelite.adapt import adapt

    cache: dict[str, object] = {}
    out = tmp_path_factory.mktemp("adapted")

    def get(method: str):
        if method not in cache:
            cache[method] = adapt(domain.run, domain.unlabeled, out / method, method=method, eval_dir=domain.eval,
                                  verbose=False)
        return cache[method]

    return get


def top1(model_or_run, folder: Path, labels: list[str]) -> float:
    """Top-1 of a Keras model (or a run directory's model) on a labelled folder."""
    from edgelite.adapt.images import load_labelled
    from edgelite.train.rundir import RunDir

    model = model_or_run
    if isinstance(model_or_run, Path):
        model = RunDir.load(model_or_run).load_model()
    x, y, _ = load_labelled(folder, labels, SIZE, "bilinear")
    return float((model.predict(x.astype(np.float32), verbose=0).argmax(1) == y).mean())
