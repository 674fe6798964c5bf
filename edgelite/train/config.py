"""Training settings: code defaults <- YAML (--config) <- CLI. The resolved settings go into every run."""

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
