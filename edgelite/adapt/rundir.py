"""The run directory, as `adapt` reads and writes it: the ONLY module of edgelite.adapt that knows its file names.

Today the names are literals in edgelite/train/finetune.py and edgelite/convert/source.py; when
`edgelite/train/rundir.py` (RunDir) lands, these functions become thin calls into it and nothing
else in edgelite.adapt changes. The source run is only ever read; a new run is built in a hidden
folder next to its destination and renamed into place, so a crash never leaves half a run and never
touches the source.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.adapt.errors import AdaptError

MODEL = "model.keras"
LABELS = "labels.txt"
CONFIG = "config.yaml"
SPLIT = "split.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
CURVES = "curves.png"
CONFUSION = "confusion_matrix.png"
SKIPPED = "skipped.txt"
REQUIRED = (MODEL, LABELS, CONFIG, SPLIT)
COPIED = (SPLIT, HISTORY, CURVES, SKIPPED)  # carried over unchanged: same data, same training history


@dataclasses.dataclass
class SourceRun:
    """A run written by `edgelite train` (or by `edgelite adapt`), read-only."""

    path: Path
    labels: list[str]
    config: dict[str, Any]
    split: Any  # edgelite.train.data.Split
    data_dir: Path
    metrics: dict[str, Any]

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def interpolation(self) -> str:
        return str(self.config.get("interpolation") or "bilinear")

    @property
    def backbone(self) -> str | None:
        return self.config.get("backbone")

    @property
    def batch_size(self) -> int:
        return int(self.config.get("batch_size") or 32)


def read_run(path: str | os.PathLike, data: str | os.PathLike | None = None) -> SourceRun:
    """Check and read a run directory (labels, config, split, metrics); one-line AdaptError otherwise."""
    run = Path(path)
    if not run.is_dir():
        raise AdaptError(f"{run} is not a run directory; pass the folder `edgelite train --out` wrote")
    missing = [f for f in REQUIRED if not (run / f).is_file()]
    if missing:
        raise AdaptError(f"{run} is not a complete run directory (missing {', '.join(missing)}); "
                         "train one with `edgelite train DATA_DIR --out RUN_DIR`")
    import yaml

    try:
        cfg = yaml.safe_load((run / CONFIG).read_text()) or {}
        int(cfg["image_size"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError, UnicodeDecodeError):
        raise AdaptError(f"{run / CONFIG} is corrupt or has no image_size; re-run `edgelite train`") from None
    labels = [line.strip() for line in (run / LABELS).read_text().splitlines() if line.strip()]
    from edgelite.train.data import Split
    from edgelite.train.errors import DataError

    try:
        split = Split.load(run / SPLIT)
    except DataError as e:
        raise AdaptError(str(e)) from None
    if list(split.classes) != labels:
        raise AdaptError(f"{run / LABELS} disagrees with {SPLIT}'s classes; the run was edited by hand — "
                         "re-run `edgelite train`")
    metrics = {}
    if (run / METRICS).is_file():
        try:
            metrics = json.loads((run / METRICS).read_text())
        except ValueError:
            metrics = {}
    data_dir = Path(data) if data is not None else Path(split.data_dir)
    return SourceRun(path=run, labels=labels, config=dict(cfg), split=split, data_dir=data_dir, metrics=metrics)


def load_model(run: SourceRun):
    """A fresh copy of the run's float Keras model (safe_mode: no arbitrary code)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras as keras

    try:
        return keras.models.load_model(run.path / MODEL, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises anything from OSError to ValueError for a bad file
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise AdaptError(f"cannot load {run.path / MODEL}: {msg} — re-run `edgelite train`") from None


def split_images(run: SourceRun, subset: str, limit: int | None = None, seed: int = 0,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N x H x W x 3 RGB, int64 labels) of a split of the run's own data; `limit`: a seeded sample."""
    from edgelite.train.data import load_images

    items = run.split.subset(subset)
    if not run.data_dir.is_dir():
        raise AdaptError(f"the run's data folder {run.data_dir} is gone; pass --data DIR pointing at the photos "
                         "it was trained on (adapt needs them to measure the training statistics)")
    if limit is not None and len(items) > limit:
        idx = np.sort(np.random.default_rng(seed).permutation(len(items))[:limit])
        items = [items[int(i)] for i in idx]
    size = (run.image_size, run.image_size)
    x, y, _ = load_images(run.data_dir, items, size, run.interpolation, progress=progress, desc=f"loading {subset}")
    if not len(y):
        raise AdaptError(f"no readable {subset} images of {run.path} under {run.data_dir}; pass --data DIR "
                         "pointing at the photos the run was trained on")
    return x, y.astype(np.int64)


def check_out(out: str | os.PathLike, source: SourceRun, overwrite: bool) -> Path:
    """The destination folder, refused when it is the source run or holds something without --overwrite."""
    out = Path(out)
    try:
        same = out.resolve() == source.path.resolve() or source.path.resolve() in out.resolve().parents
    except OSError:
        same = False
    if same:
        raise AdaptError("--out must be a new folder, not the source run (the source run is never modified); "
                         "e.g. --out runs/NAME-adapted")
    if out.exists() and not out.is_dir():
        raise AdaptError(f"--out {out} is a file; give a folder for the adapted run")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise AdaptError(f"--out {out} already holds files; pass --overwrite to replace it or choose another folder")
        if not (out / CONFIG).is_file():
            raise AdaptError(f"--out {out} is not a run directory; --overwrite replaces only a run, choose another folder")
    return out


def write_run(source: SourceRun, out: Path, model, *, adaptation: dict[str, Any], metrics: dict[str, Any],
              history: list[dict[str, Any]] | None = None, extra: dict[str, str] | None = None) -> Path:
    """Write the adapted run at `out`: the source run's shape (model, labels, config, split, metrics,
    history, plots) with `adaptation` recorded in config.yaml and metrics.json; `extra` = {file name: text}."""
    import yaml

    from edgelite.train import report

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        for name in COPIED:
            if (source.path / name).is_file():
                shutil.copy2(source.path / name, stage / name)
        if source.data_dir.resolve() != Path(source.split.data_dir).resolve():  # --data: the photos moved
            dataclasses.replace(source.split, data_dir=str(source.data_dir.resolve())).save(stage / SPLIT)
        (stage / LABELS).write_text("".join(f"{c}\n" for c in source.labels))
        cfg = dict(source.config)
        cfg["out"] = str(out)
        if source.data_dir.resolve() != Path(source.split.data_dir).resolve():
            cfg["data_dir"] = str(source.data_dir.resolve())
        cfg["adaptation"] = adaptation
        (stage / CONFIG).write_text(yaml.safe_dump(cfg, sort_keys=False))
        if history:
            report.write_history(history, stage / "adapt_history.csv")
        (stage / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
        cm = metrics.get("test", {}).get("confusion_matrix")
        if cm:
            report.plot_confusion(np.asarray(cm), source.labels, stage / CONFUSION)
        for name, text in (extra or {}).items():
            (stage / name).write_text(text)
        for layer in model.layers:
            layer.trainable = True
        model.save(stage / MODEL)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(stage, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out
