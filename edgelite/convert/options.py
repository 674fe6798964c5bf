"""`ConvertOptions`: every `edgelite convert` option, declared once.

The CLI's argparse ``dest`` names are these field names (`edgelite.options.from_namespace` fills the
dataclass from the namespace), and the Python API takes the same names:

    >>> ConvertOptions(prune=0.5, qat=True).check().prune_block
    1
    >>> ConvertOptions(prune_block=4).check()
    Traceback (most recent call last):
    ...
    edgelite.convert.errors.ConvertError: --prune-block 4 needs --prune SPARSITY (e.g. --prune 0.5)

The source (a run directory or a .keras file) and the bundle folder are `convert`'s two arguments, not
options. Light to import (no TensorFlow): the CLI imports it to declare its flags.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from edgelite.convert.errors import ConvertError
from edgelite.convert.formats import IO_TYPES
from edgelite.convert.onnx_export import DEFAULT_OPSET, MAX_OPSET

#: top-1 points post-training int8 may lose before convert quantization-aware trains (--auto-qat)
AUTO_QAT = 0.5


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """What to export and how. Field names are the CLI's flags (``prune_epochs`` is ``--prune-epochs``)."""

    #: comma list or sequence of fp32, fp16, dynamic, int8, onnx, edgetpu (None: every default format)
    formats: str | Sequence[str] | None = None
    #: magnitude-prune to this sparsity (adds pruned_int8), fine-tuning `prune_epochs` epochs at `prune_lr`
    prune: float | None = None
    prune_epochs: int = 3
    #: prune runs of this many neighbouring weights (1: unstructured)
    prune_block: int = 1
    prune_lr: float = 1e-4
    #: quantization-aware training (adds qat_int8, or pqat_int8 together with `prune`)
    qat: bool = False
    qat_epochs: int = 2
    qat_lr: float = 1e-5
    #: when post-training int8 loses more than this many top-1 points (or more than `max_drop`), run QAT
    #: as well and add qat_int8, which the device then prefers; None: never
    auto_qat: float | None = AUTO_QAT
    #: training images that calibrate int8 quantization
    calibration: int = 300
    #: a folder of target-domain images (the device's camera) to calibrate int8 on instead of the training split
    calibration_data: str | os.PathLike | None = None
    #: one int8 scale per weight tensor (post-training int8 and QAT alike); default per channel
    per_tensor: bool = False
    #: input/output type of int8 models (uint8: raw pixels, Edge TPU-ready)
    io_type: str = "uint8"
    #: fail (GateFailed, exit 3) when a format's top-1 is more than this many points below the float model
    max_drop: float | None = None
    #: image folder: for a .keras file, or when the run's data folder moved
    data: str | os.PathLike | None = None
    opset: int = DEFAULT_OPSET
    #: fine-tuning batch size (None: the run's)
    batch_size: int | None = None
    #: calibration sample and fine-tuning seed
    seed: int = 0
    #: load an HDF5 model (which can run code stored in it) instead of refusing it
    trust_model: bool = False
    #: replace a bundle already at --out (the files convert did not write are kept)
    overwrite: bool = False
    #: progress lines on stdout (convert.log in the bundle has them either way)
    verbose: bool = True

    @classmethod
    def make(cls, options: ConvertOptions | None = None, **fields: Any) -> ConvertOptions:
        """`options` (or the defaults) with `fields` replaced; an unknown name is a TypeError naming the known ones."""
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"convert() got unknown option(s) {', '.join(unknown)}; "
                            f"known: {', '.join(f.name for f in dataclasses.fields(cls))}")
        return dataclasses.replace(options or cls(), **fields)

    def check(self) -> ConvertOptions:
        """Raise ConvertError for a value no conversion can use; checked before any work starts."""
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise ConvertError(f"--prune {self.prune}: sparsity must be between 0 and 1 (e.g. 0.5 for 50 %)")
        if self.prune_block < 1:
            raise ConvertError(f"--prune-block {self.prune_block}: give a block length >= 1 (1 = unstructured)")
        if self.prune_block > 1 and self.prune is None:
            raise ConvertError(f"--prune-block {self.prune_block} needs --prune SPARSITY (e.g. --prune 0.5)")
        if self.prune_epochs < 1 or self.qat_epochs < 1:
            raise ConvertError("--prune-epochs and --qat-epochs must be at least 1")
        if self.prune_lr <= 0 or self.qat_lr <= 0:
            raise ConvertError("--prune-lr and --qat-lr must be above 0 (e.g. 1e-4 and 1e-5)")
        if self.calibration < 1:
            raise ConvertError(f"--calibration {self.calibration}: need at least 1 image (a few hundred is typical)")
        if self.io_type not in IO_TYPES:
            raise ConvertError(f"--io-type {self.io_type!r}: choose one of {', '.join(IO_TYPES)}")
        if self.auto_qat is not None and self.auto_qat < 0:
            raise ConvertError(f"--auto-qat {self.auto_qat}: give the top-1 points int8 may lose before QAT runs, "
                               ">= 0 (or --no-auto-qat)")
        if self.max_drop is not None and self.max_drop < 0:
            raise ConvertError(f"--max-drop {self.max_drop}: give the allowed top-1 drop in points, >= 0")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConvertError("--batch-size must be at least 1")
        if not 9 <= self.opset <= MAX_OPSET:  # checked before any work, not after calibration and QAT
            raise ConvertError(f"--opset {self.opset}: tf2onnx 1.17 supports opsets 9..{MAX_OPSET}")
        return self

    def settings(self, formats: list[str], batch_size: int, calibration_images: int) -> dict[str, Any]:
        """What the manifest records (info.settings): the options that shape the files, as resolved."""
        s = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("data", "verbose", "trust_model", "overwrite")}
        s.update(formats=list(formats), batch_size=batch_size, calibration_images=calibration_images)
        if s["calibration_data"] is not None:
            s["calibration_data"] = str(s["calibration_data"])
        return s
