"""What `convert` converts: a training run directory, or a Keras model file plus an image folder.

Every check a user can trip over (missing or corrupt run, labels that do not match the model, a
data folder that moved) becomes a one-line :class:`ConvertError` here, before any conversion work.
Images are decoded with the training code's decoder and then go through the device's own
``prepare_rgb``, so calibration and validation see exactly the pixels the device will feed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.bundle import LABELS, InputSpec
from edgelite.convert.errors import ConvertError
from edgelite.errors import first_line
from edgelite.suggest import did_you_mean

MODEL_SUFFIXES = (".keras", ".h5")


@dataclasses.dataclass
class Source:
    kind: str  # "run" | "model"
    path: Path  # the run directory or the model file
    model_path: Path
    labels: list[str]
    spec: InputSpec
    data_dir: Path
    split: Any  # edgelite.train.data.Split
    backbone: str | None = None
    trust_model: bool = False  # --trust-model: an HDF5 file may be loaded (it can run code)
    batch_size: int = 32
    run_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def load_model(self):
        """A fresh copy of the float Keras model (tfmot wraps layers in place, so every user gets its own)."""
        return _load_keras(self.model_path, self.trust_model)

    def images(self, subset: str, indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """(uint8 N x H x W x 3 RGB, int64 labels, number skipped) of a split, optionally only `indices`."""
        from edgelite.train.data import load_images

        items = self.split.subset(subset)
        if indices is not None:
            items = [items[int(i)] for i in indices]
        x, y, skipped = load_images(self.data_dir, items, (self.spec.height, self.spec.width), self.spec.resize)
        return x, y.astype(np.int64), len(skipped)


def open_source(path: str | os.PathLike, data: str | os.PathLike | None = None, *,
                trust_model: bool = False) -> Source:
    """Check and describe what to convert: RUN_DIR, or MODEL.keras with `data` (an image folder).

    `trust_model`: load an HDF5 model too (tf-keras runs a Lambda layer's stored bytecode from one)."""
    p = Path(path)
    if not p.exists():
        raise ConvertError(f"{p} does not exist" + (did_you_mean(p) or "; pass a run directory written by "
                                                     "`edgelite train` (or a .keras model file with --data DIR)"))
    if p.is_file():
        if p.suffix not in MODEL_SUFFIXES:
            raise ConvertError(f"{p} is neither a run directory nor a Keras model file ({', '.join(MODEL_SUFFIXES)})")
        if data is None:
            raise ConvertError(f"{p} is a bare model file: pass --data DIR (one sub-folder of images per class, "
                               "the same classes in the same order as the model's outputs)")
        return dataclasses.replace(_open_model_file(p, Path(data), trust_model), trust_model=trust_model)
    return dataclasses.replace(_open_run(p, Path(data) if data is not None else None, trust_model),
                               trust_model=trust_model)


def _open_run(run: Path, data: Path | None, trust_model: bool = False) -> Source:
    from edgelite.train.errors import DataError, TrainError
    from edgelite.train.rundir import RunDir

    try:
        rd = RunDir.load(run)
    except (TrainError, DataError) as e:
        raise ConvertError(str(e)) from None
    data_dir = data if data is not None else Path(rd.split.data_dir)
    _check_data_dir(data_dir, rd.split, given=data is not None, run=run)
    model = _load_keras(rd.model_path, trust_model)
    spec = InputSpec(height=rd.config.image_size, width=rd.config.image_size, resize=rd.config.interpolation)
    _check_model(model, rd.labels, spec, rd.model_path, labels_from=f"{rd.file(LABELS)}")
    return Source(kind="run", path=run, model_path=rd.model_path, labels=rd.labels, spec=spec, data_dir=data_dir,
                  split=rd.split, backbone=rd.config.backbone, batch_size=int(rd.config.batch_size or 32),
                  run_metrics=rd.metrics)


def _open_model_file(model_path: Path, data: Path, trust_model: bool = False) -> Source:
    from edgelite.train.data import find_classes, stratified_split
    from edgelite.train.errors import DataError

    try:
        classes, files = find_classes(data)
        items = [(rel, i) for i, c in enumerate(classes) for rel in files[c]]
        split = stratified_split(items, classes, seed=0, data_dir=str(data.resolve()))
    except DataError as e:
        raise ConvertError(f"--data {data}: {e}") from None
    model = _load_keras(model_path, trust_model)
    shape = model.inputs[0].shape if len(model.inputs) == 1 else None
    if shape is None or len(shape) != 4 or shape[1] is None or shape[2] is None or shape[3] != 3:
        raise ConvertError(f"{model_path}: the model input must be one fixed-size RGB image (None, H, W, 3), "
                           f"got {[tuple(i.shape) for i in model.inputs]}")
    spec = InputSpec(height=int(shape[1]), width=int(shape[2]))
    _check_model(model, classes, spec, model_path, labels_from=f"--data {data} ({len(classes)} class folders)")
    return Source(kind="model", path=model_path, model_path=model_path, labels=list(classes), spec=spec,
                  data_dir=data, split=split,
                  notes=[f"held-out images are a fresh split of {data} (seed 0); if the model was trained on "
                         "these photos it may have seen them"])


def _check_data_dir(data_dir: Path, split, *, given: bool, run: Path) -> None:
    if not data_dir.is_dir():
        if given:
            raise ConvertError(f"--data {data_dir} is not a folder")
        raise ConvertError(f"the run's data folder {data_dir} is gone; pass --data DIR pointing at the same photos")
    missing = [rel for rel, _ in split.test[:20] if not (data_dir / rel).is_file()]
    if missing and len(missing) == min(20, len(split.test)):
        raise ConvertError(f"{data_dir} does not hold the photos of {run}'s split (e.g. {missing[0]} is missing); "
                           "pass --data DIR pointing at the folder the run was trained on")


def _load_keras(path: Path, trust_model: bool = False):
    from edgelite.train.errors import TrainError
    from edgelite.train.tfenv import load_keras_model

    try:
        return load_keras_model(path, trust=trust_model, flag="--trust-model")
    except TrainError as e:  # refused before anything was loaded
        raise ConvertError(str(e)) from None
    except Exception as e:  # Keras raises anything from OSError to ValueError for a bad file
        raise ConvertError(f"cannot load {path}: {first_line(e, 160)} — the file is corrupt or not a Keras model; "
                           "re-run `edgelite train`") from None


def _check_model(model, labels: list[str], spec: InputSpec, path: Path, *, labels_from: str) -> None:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConvertError(f"{path}: expected one image input and one output, got {len(model.inputs)} inputs and "
                           f"{len(model.outputs)} outputs")
    in_shape = tuple(model.inputs[0].shape)
    if len(in_shape) != 4 or in_shape[3] != 3:
        raise ConvertError(f"{path}: input shape {in_shape} is not (None, H, W, 3)")
    if (in_shape[1], in_shape[2]) != (spec.height, spec.width):
        raise ConvertError(f"{path} takes {in_shape[1]}x{in_shape[2]} images but the run says "
                           f"{spec.height}x{spec.width}; the run is inconsistent — re-run `edgelite train`")
    out_shape = tuple(model.outputs[0].shape)
    n_out = out_shape[-1] if out_shape else None
    if len(out_shape) != 2 or n_out != len(labels):
        raise ConvertError(f"labels/model mismatch: {labels_from} names {len(labels)} classes but {path.name} "
                           f"outputs {n_out}; convert the model with the labels it was trained on")
