"""Training settings: code defaults <- YAML (--config) <- CLI. The resolved settings go into every run.

Two classes, one list of settings:

* `TrainConfig` is a run's resolved settings, every one with its value; the run directory saves it as
  config.yaml (`edgelite.train.rundir.RunDir` reads it back).
* `TrainOptions` is what one `edgelite train` asks for: each TrainConfig field, None meaning "not given"
  (the YAML file or the code default decides), plus ``config``, ``resume`` and ``overwrite``, which
  say how to run and are not saved. It is generated from TrainConfig, so a setting is declared once;
  the CLI's ``dest`` names are its field names and ``train()`` takes the same names.

    >>> opts = TrainOptions(data_dir="photos", out="runs/a", epochs=3)
    >>> opts.settings()
    {'epochs': 3}
    >>> TrainOptions.make(opts, epochs=None, fine_tune_epochs=0).settings()   # None: keep what is there
    {'epochs': 3, 'fine_tune_epochs': 0}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgelite.errors import first_line
from edgelite.train.errors import TrainError


@dataclasses.dataclass
class TrainConfig:
    data_dir: str = ""
    out: str = ""
    backbone: str = "efficientnet_lite0"
    image_size: int | None = None  # None: the backbone's default
    epochs: int = 10  # phase 1: head only, backbone frozen
    cached_views: int = 1  # the frozen layers run once per image and view (both phases); 0: every epoch
    fine_tune_epochs: int = 5  # phase 2: top blocks unfrozen, BatchNorm still frozen
    unfreeze: int | None = None  # blocks unfrozen in phase 2; None: the backbone's default
    batch_size: int = 32
    lr: float = 1e-3
    fine_tune_lr: float = 1e-4
    label_smoothing: float = 0.1
    dropout: float = 0.2
    augment: bool = True
    class_weights: str = "auto"  # auto | none
    val_split: float = 0.1
    test_split: float = 0.1
    weights: str | None = "imagenet"  # imagenet | none | PATH
    seed: int = 0
    patience: int = 3  # early stopping on validation loss
    interpolation: str = "bilinear"
    strategy: str = "default"  # default | mirrored | multiworker

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, values: dict[str, Any], source: str) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for k, v in values.items():
            expected = _TYPES[k]
            if v is None and k in _OPTIONAL:
                continue
            if expected is float and isinstance(v, int) and not isinstance(v, bool):
                continue
            if not isinstance(v, expected) or (expected is int and isinstance(v, bool)):
                raise TrainError(f"{source}: {k.replace('_', '-')} must be {expected.__name__}, got {v!r}")
        return dataclasses.replace(self, **values)

    def validate(self) -> TrainConfig:
        if self.class_weights not in ("auto", "none"):
            raise TrainError(f"--class-weights {self.class_weights!r}: use auto or none")
        if self.strategy not in ("default", "mirrored", "multiworker"):
            raise TrainError(f"--strategy {self.strategy!r}: use default, mirrored or multiworker")
        if self.epochs < 0 or self.fine_tune_epochs < 0 or self.epochs + self.fine_tune_epochs == 0:
            raise TrainError("--epochs and --fine-tune-epochs must be >= 0 and not both 0")
        if self.cached_views < 0:
            raise TrainError(f"--cached-views {self.cached_views}: use 0 (run the backbone every epoch) or more")
        if self.batch_size < 1:
            raise TrainError("--batch-size must be at least 1")
        if not (0 <= self.val_split < 1 and 0 <= self.test_split < 1 and self.val_split + self.test_split < 1):
            raise TrainError(f"--val-split {self.val_split} and --test-split {self.test_split} must be in [0, 1) "
                             "and sum below 1")
        if not 0 <= self.label_smoothing < 1:
            raise TrainError("--label-smoothing must be in [0, 1)")
        from edgelite.device.preprocess import INTERPOLATION

        if self.interpolation not in INTERPOLATION:
            raise TrainError(f"--interpolation {self.interpolation!r}: use one of {', '.join(INTERPOLATION)}")
        return self


#: the type each setting must have (a YAML file can say anything); None is allowed for _OPTIONAL ones
_TYPES: dict[str, type] = {"image_size": int, "unfreeze": int, "weights": str, "data_dir": str, "out": str}
_OPTIONAL = {"image_size", "unfreeze", "weights"}
for _f in dataclasses.fields(TrainConfig):
    _TYPES.setdefault(_f.name, type(_f.default))


#: TrainOptions fields that say how to run `edgelite train`, not what to train (not saved into the run)
RUN_CONTROL = ("config", "resume", "overwrite")
#: TrainConfig fields that are the command's two arguments (DATA_DIR, --out), not settings
LOCATIONS = ("data_dir", "out")


class _TrainOptionsBase:
    @classmethod
    def make(cls, options: TrainOptions | None = None, **fields: Any) -> TrainOptions:
        """`options` (or none given) with the non-None `fields` replaced; an unknown name is a TypeError."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise TypeError(f"train() got unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return dataclasses.replace(options or cls(), **{k: v for k, v in fields.items() if v is not None})

    def settings(self) -> dict[str, Any]:
        """The TrainConfig settings given (not None), without DATA_DIR and --out."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)
                if f.name not in LOCATIONS and getattr(self, f.name) is not None}


TrainOptions = dataclasses.make_dataclass(
    "TrainOptions",
    [(f.name, f.type if "None" in f.type else f"{f.type} | None", dataclasses.field(default=None))
     for f in dataclasses.fields(TrainConfig)]
    + [("config", "str | None", dataclasses.field(default=None)), ("resume", "bool", dataclasses.field(default=False)),
       ("overwrite", "bool", dataclasses.field(default=False))],
    bases=(_TrainOptionsBase,), frozen=True)
TrainOptions.__module__ = __name__  # make_dataclass takes module= only from Python 3.12
TrainOptions.__doc__ = ("Everything one `edgelite train` asks for: every TrainConfig setting (None: not given), "
                        "DATA_DIR and --out, and config / resume / overwrite.")


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """`edgelite data`: which demo dataset to write where, and how much of it."""

    dataset: str = "fashion-mnist"
    out: str = ""
    per_class: int = 300
    test_per_class: int = 0  # > 0: held-out images from the test file, listed in DATA_DIR/heldout.txt
    size: int = 0  # 0: keep the 28x28 images
    seed: int = 0
    source: str | None = None  # folder with the IDX .gz files; None: Debian's package, then download


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise TrainError(f"--config {p}: no such file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise TrainError(f"--config {p} is not valid YAML: {first_line(e)}") from None
    if not isinstance(data, dict):
        raise TrainError(f"--config {p} must be a mapping of setting: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def save_yaml(cfg: TrainConfig, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
