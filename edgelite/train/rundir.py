"""The run directory: what `edgelite train` writes and `convert` reads, owned here as `edgelite.bundle`
owns the bundle. Every file name of a run is a constant of this module; nothing else spells them::

    runs/NAME/
      model.keras            the float Keras model, preprocessing inside (MODEL)
      labels.txt             one label per line, in the model's output order (LABELS)
      config.yaml            the resolved training settings (CONFIG)
      split.json             the deterministic train/val/test split, paths relative to its data_dir (SPLIT)
      metrics.json           accuracy, per-class precision/recall/F1, confusion matrix, timings (METRICS)
      history.csv            one row per epoch (HISTORY)
      curves.png             loss and accuracy per epoch (CURVES)
      confusion_matrix.png   the test confusion matrix (CONFUSION)
      skipped.txt            unreadable photos and why, one per line (SKIPPED)
      checkpoints/           last.h5, best.h5, state.json: what --resume continues from (CHECKPOINTS)

A run written by `edgelite adapt` has the same shape, without checkpoints/ (it cannot be resumed), plus
an ``adaptation:`` section in config.yaml and metrics.json (ADAPTATION: method, source run, settings),
adapt_history.csv (ADAPT_HISTORY, tent/pseudo steps) and pseudo_labels.csv (PSEUDO_LABELS, pseudo).

Importing this module imports neither TensorFlow nor yaml; `load_model` loads Keras when called.
The examples need a run folder (skipped as doctests):

    >>> run = RunDir.load("runs/flowers")                     # doctest: +SKIP
    >>> run.labels, run.config.image_size, run.metrics["test"]["accuracy"]   # doctest: +SKIP
    >>> x, y, skipped = run.images("test")                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from edgelite.bundle import INTERPOLATIONS, LABELS
from edgelite.errors import first_line
from edgelite.train.config import TrainConfig, save_yaml
from edgelite.train.data import TEXT, Skipped, Split, load_images, read_skipped, write_skipped
from edgelite.train.errors import DataError, TrainError

MODEL = "model.keras"
CONFIG = "config.yaml"
SPLIT = "split.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
CURVES = "curves.png"
CONFUSION = "confusion_matrix.png"
SKIPPED = "skipped.txt"
CHECKPOINTS = "checkpoints"
LAST_WEIGHTS = "last.h5"  # in CHECKPOINTS: the weights after the last finished epoch
BEST_WEIGHTS = "best.h5"  # in CHECKPOINTS: the weights with the best validation loss
STATE = "state.json"  # in CHECKPOINTS: {"phase", "epoch", "history"} of LAST_WEIGHTS
ADAPT_HISTORY = "adapt_history.csv"  # an adapted run: one row per tent step / pseudo epoch
PSEUDO_LABELS = "pseudo_labels.csv"  # an adapted run (--method pseudo): every image's prediction and use
ADAPTATION = "adaptation"  # the key of config.yaml / metrics.json that marks and describes an adapted run

#: what `convert` needs of a run, in the order a message names the missing ones
REQUIRED = (MODEL, LABELS, CONFIG, SPLIT)
#: every file a finished run holds (CHECKPOINTS aside), in the order the summary lists them
FILES = (MODEL, LABELS, CONFIG, SPLIT, METRICS, HISTORY, CURVES, CONFUSION, SKIPPED)

__all__ = ["RunDir", "load_run_model", "load_split_images", "MODEL", "LABELS", "CONFIG", "SPLIT", "METRICS",
           "HISTORY", "CURVES", "CONFUSION", "SKIPPED", "CHECKPOINTS", "ADAPT_HISTORY", "PSEUDO_LABELS",
           "ADAPTATION", "REQUIRED", "FILES"]


@dataclasses.dataclass
class RunDir:
    """A training run: where it lives and what it holds (`train` returns one; `convert` loads one)."""

    path: Path
    config: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    labels: list[str] = dataclasses.field(default_factory=list)
    split: Split | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    #: what `edgelite adapt` recorded in config.yaml (method, source_run, settings); None for a trained run
    adaptation: dict[str, Any] | None = None

    def __post_init__(self):
        self.path = Path(self.path)

    # ---------------------------------------------------------------- where each file is
    def file(self, name: str) -> Path:
        """The path of one of the run's files, by its constant: ``run.file(METRICS)``."""
        return self.path / name

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def missing(self) -> list[str]:
        """The REQUIRED files this folder lacks (all of them when it is not a run)."""
        return [f for f in REQUIRED if not (self.path / f).is_file()]

    def holds_files(self) -> bool:
        """True when the folder exists and is not empty (a run, or something `train` must not overwrite)."""
        return self.path.is_dir() and any(self.path.iterdir())

    # ---------------------------------------------------------------- reading
    @classmethod
    def load(cls, path: str | os.PathLike) -> RunDir:
        """Read and cross-check a run; a missing, incomplete or hand-edited run is a one-line TrainError."""
        run = cls(Path(path))
        if not run.path.is_dir():
            raise TrainError(f"{run.path} is not a run directory; train one with `edgelite train DATA_DIR --out "
                             f"{run.path}`")
        missing = run.missing()
        if missing:
            raise TrainError(f"{run.path} is not a complete run directory: missing {', '.join(missing)}; "
                             "train one with `edgelite train DATA_DIR --out RUN_DIR`")
        saved = run._read_saved()
        run.config, run.adaptation = run._config(saved), run._adaptation(saved)
        run.labels = _labels(run.file(LABELS))
        run.split = run.read_split()
        if list(run.split.classes) != run.labels:
            raise TrainError(f"{run.file(LABELS)} ({len(run.labels)} labels) disagrees with {SPLIT}'s classes "
                             f"({len(run.split.classes)}); the run was edited by hand — re-run `edgelite train`")
        run.metrics = _json_or_empty(run.file(METRICS))
        run.skipped = read_skipped(run.file(SKIPPED)) if run.file(SKIPPED).is_file() else []
        return run

    def read_config(self) -> TrainConfig:
        """The saved settings, checked: a run always records its image size and interpolation."""
        return self._config(self._read_saved())

    def settings_to_resume(self) -> dict[str, Any]:
        """config.yaml as `train --resume` continues with it; an adapted run cannot be resumed (one-line error)."""
        saved = self._read_saved()
        adaptation = self._adaptation(saved)
        if adaptation is not None:
            source = adaptation.get("source_run") or "its source run"
            raise TrainError(f"--resume: {self.path} was written by `edgelite adapt` from {source} and has no "
                             f"training to continue; resume {source} (then adapt it again) or train a new run")
        return saved

    def _read_saved(self) -> dict[str, Any]:
        """config.yaml as a mapping, keys with underscores; a corrupt file is a one-line TrainError."""
        import yaml

        p = self.file(CONFIG)
        try:
            saved = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
            raise TrainError(f"{p} is corrupt ({type(e).__name__}: {first_line(e)}); re-run `edgelite train`") from None
        if not isinstance(saved, dict):
            raise TrainError(f"{p} is corrupt (not a mapping); re-run `edgelite train`")
        return {str(k).replace("-", "_"): v for k, v in saved.items()}

    def _adaptation(self, saved: dict[str, Any]) -> dict[str, Any] | None:
        adaptation = saved.get(ADAPTATION)
        if adaptation is not None and not isinstance(adaptation, dict):
            raise TrainError(f"{self.file(CONFIG)} is corrupt ({ADAPTATION} is not a mapping); re-run `edgelite adapt`")
        return adaptation

    def _config(self, saved: dict[str, Any]) -> TrainConfig:
        p = self.file(CONFIG)
        cfg = TrainConfig().update({k: v for k, v in saved.items() if k != ADAPTATION}, str(p))
        if not isinstance(cfg.image_size, int) or cfg.image_size < 1:
            raise TrainError(f"{p} is corrupt (image_size {cfg.image_size!r}); re-run `edgelite train`")
        if cfg.interpolation not in INTERPOLATIONS:
            raise TrainError(f"{p}: unknown interpolation {cfg.interpolation!r}")
        return cfg

    def read_split(self) -> Split:
        try:
            return Split.load(self.file(SPLIT))
        except DataError as e:
            raise TrainError(str(e)) from None

    def read_state(self) -> dict[str, Any] | None:
        """The checkpoint `--resume` continues from ({"phase", "epoch", "history"}), or None before one."""
        state = self.checkpoints / STATE
        if not state.exists() or not (self.checkpoints / LAST_WEIGHTS).exists():
            return None
        return json.loads(state.read_text())

    def load_model(self):
        """The float Keras model (safe_mode on: no arbitrary code); a fresh copy each call."""
        if not self.model_path.exists():
            raise TrainError(f"{self.path} has no {MODEL}; is it a run directory written by `edgelite train`?")
        from edgelite.train.tfenv import load_keras_model

        try:
            return load_keras_model(self.model_path)  # a zip .keras, in Keras' safe mode; never HDF5
        except TrainError:
            raise
        except Exception as e:  # Keras raises anything from OSError to ValueError for a bad file
            raise TrainError(f"cannot load {self.model_path}: {first_line(e, 160)} — the file is corrupt or not a "
                             "Keras model; re-run `edgelite train`") from None

    def images(self, subset: str = "test", data_dir: str | os.PathLike | None = None, progress: bool = False,
               limit: int | None = None, seed: int = 0):
        """(uint8 N x H x W x 3 RGB, int32 labels, skipped) of a split, decoded and resized as in training;
        `limit`: a seeded sample of at most that many images, in split order."""
        if self.split is None:
            raise TrainError(f"{self.path}: load the run first (RunDir.load)")
        root = Path(data_dir) if data_dir is not None else Path(self.split.data_dir)
        if not root.exists():
            raise DataError(f"the run's data folder {root} is gone; pass --data DIR pointing at the same photos")
        items = self.split.subset(subset)
        if limit is not None and len(items) > limit:
            import numpy as np

            keep = np.sort(np.random.default_rng(seed).permutation(len(items))[:limit])
            items = [items[int(i)] for i in keep]
        size = (self.config.image_size, self.config.image_size)
        return load_images(root, items, size, self.config.interpolation, progress=progress, desc=subset)

    # ---------------------------------------------------------------- writing
    @classmethod
    @contextlib.contextmanager
    def staged(cls, path: str | os.PathLike) -> Iterator[RunDir]:
        """A new run written into a hidden folder next to `path` and renamed into place when the block ends
        (replacing what is there); an error removes the half-written folder and leaves `path` untouched. (Skipped as a doctest: it writes a run.)

            >>> with RunDir.staged("runs/new") as run:            # doctest: +SKIP
            ...     run.config, run.labels, run.split = cfg, labels, split
            ...     run.save()
        """
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        run = cls(final.parent / f".{final.name}.partial-{os.getpid()}")
        if run.path.exists():
            shutil.rmtree(run.path)
        run.path.mkdir()
        try:
            yield run
            if final.exists():
                old = final.parent / f".{final.name}.old-{os.getpid()}"
                os.replace(final, old)
                os.replace(run.path, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(run.path, final)
        except BaseException:
            shutil.rmtree(run.path, ignore_errors=True)
            raise
        run.path = final

    def copy_from(self, other: RunDir, names: Iterable[str]) -> None:
        """Copy the named files of `other` that exist (a derived run carries them over unchanged)."""
        for name in names:
            if other.file(name).is_file():
                shutil.copy2(other.file(name), self.file(name))

    def save(self) -> None:
        """Write what is known before training: config (+ adaptation), labels, split and the skipped list."""
        self.path.mkdir(parents=True, exist_ok=True)
        save_yaml(self.config, self.file(CONFIG))
        if self.adaptation is not None:  # a section after the settings, in the same YAML mapping
            import yaml

            with open(self.file(CONFIG), "a") as f:
                f.write(yaml.safe_dump({ADAPTATION: self.adaptation}, sort_keys=False))
        self.file(LABELS).write_text("".join(f"{c}\n" for c in self.labels), **TEXT)
        if self.split is not None:
            self.split.save(self.file(SPLIT))
        write_skipped(self.file(SKIPPED), self.skipped)

    def save_results(self, model, history: list[dict[str, Any]]) -> None:
        """Write what training produced: the model, metrics, history and the two plots."""
        from edgelite.train.report import plot_curves, write_history

        self.save_model(model)
        write_history(history, self.file(HISTORY))
        plot_curves(history, self.file(CURVES))

    def save_model(self, model) -> None:
        """Write the model, its metrics and, when they hold a test confusion matrix, its plot."""
        model.save(self.model_path)
        self.file(METRICS).write_text(json.dumps(self.metrics, indent=2) + "\n")
        cm = (self.metrics.get("test") or {}).get("confusion_matrix")
        if cm:
            import numpy as np

            from edgelite.train.report import plot_confusion

            plot_confusion(np.asarray(cm), self.labels, self.file(CONFUSION))

    def save_checkpoint(self, model, state: dict[str, Any]) -> None:
        """The weights and state after an epoch, each replaced atomically (a kill leaves the previous pair)."""
        ckpt = self.checkpoints
        tmp = ckpt / f"{Path(LAST_WEIGHTS).stem}.tmp.h5"
        model.save_weights(str(tmp))
        os.replace(tmp, ckpt / LAST_WEIGHTS)
        tmp_state = ckpt / f"{Path(STATE).stem}.tmp.json"
        tmp_state.write_text(json.dumps(state))
        os.replace(tmp_state, ckpt / STATE)


def load_run_model(run_dir: str | os.PathLike):
    """Load the model.keras of a run this toolkit wrote (safe_mode on: no arbitrary code)."""
    return RunDir(Path(run_dir)).load_model()


def load_split_images(run_dir: str | os.PathLike, subset: str = "test", progress: bool = False):
    """Images of a training run's split: (uint8 NHWC, labels, skipped). Used by `convert` and the tests."""
    return RunDir.load(run_dir).images(subset, progress=progress)


def _labels(path: Path) -> list[str]:
    try:
        labels = [ln.strip() for ln in path.read_text(**TEXT).splitlines() if ln.strip()]
    except OSError as e:
        raise TrainError(f"cannot read {path} ({e}); re-run `edgelite train`") from None
    if len(labels) < 2:
        raise TrainError(f"{path} has {len(labels)} label(s); a classifier needs at least two")
    if len(set(labels)) != len(labels):
        raise TrainError(f"{path} has duplicate labels; each class must be named once")
    return labels


def _json_or_empty(path: Path) -> dict[str, Any]:
    """An optional JSON file: {} when it is absent or unreadable (a report, never needed to go on)."""
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
