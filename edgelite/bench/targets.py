"""What `edgelite bench` measures: bundles (one model per format) and bare .tflite / .onnx files.

A manifest entry that cannot be benched (export failed, missing, checksum mismatch) is kept as a
`ModelSpec` with its status and error, so it becomes a row of the table instead of vanishing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgelite.bench.errors import BenchUsageError
from edgelite.bench.stats import LOAD_FAILED, OK
from edgelite.formats import model_format
from edgelite.suggest import did_you_mean


@dataclasses.dataclass
class ModelSpec:
    """One file to bench (or a manifest entry that cannot be benched, with its status)."""

    name: str
    file: str | None
    format: str
    precision: str
    bytes: int | None
    status: str = OK
    error: str | None = None
    top1_manifest: float | None = None


@dataclasses.dataclass
class Target:
    path: str
    kind: str  # bundle | model
    models: list[ModelSpec]
    spec: Any = None  # bundle InputSpec (None for a bare model file)
    labels: list[str] | None = None


def _guess_precision(stem: str) -> str:
    s = stem.lower()
    for p in ("int8", "fp16", "dynamic", "fp32"):
        if p in s:
            return p
    return "?"


def resolve_targets(paths: list[str], formats: list[str] | None = None) -> list[Target]:
    """Bundles (directories) and bare model files (.tflite / .onnx) -> what to bench, in order."""
    from edgelite.bundle import FORMATS, Bundle, BundleError, read_labels
    from edgelite.formats import SENSOR_FORMATS

    if not paths:
        raise BenchUsageError("give a bundle directory or a model file to bench")
    targets: list[Target] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            b = Bundle.load(p)
            by_name = {m.name: m for m in b.models}
            # a camera's own accelerator (imx500) is not this CPU's to bench: `run --source imx500` reports its time
            order = ([n for n in FORMATS if n in by_name and n not in SENSOR_FORMATS]
                     + [n for n in by_name if n not in FORMATS])
            wanted = formats if formats is not None else order
            models: list[ModelSpec] = []
            for name in wanted:
                fmt, precision = FORMATS.get(name, ("tflite", "?"))
                e = by_name.get(name)
                if e is None:
                    models.append(ModelSpec(name, None, fmt, precision, None, LOAD_FAILED,
                                            f"bundle {p} has no {name!r} model; it has {b.available()}"))
                    continue
                top1 = e.metrics.get("top1") if isinstance(e.metrics, dict) else None
                spec = ModelSpec(name, None, e.format, e.precision, e.bytes, top1_manifest=top1)
                if e.status != OK or not e.path:
                    spec.status, spec.error = e.status if e.status != OK else LOAD_FAILED, e.error or "no file"
                else:
                    try:
                        spec.file = str(b.verified_path(e))
                    except BundleError as err:
                        spec.status, spec.error = LOAD_FAILED, str(err)
                models.append(spec)
            targets.append(Target(str(p), "bundle", models, spec=b.input, labels=list(b.labels)))
        elif p.is_file():
            fmt = model_format(p)
            if fmt is None:
                raise BenchUsageError(f"{p} is neither a .tflite nor an .onnx file nor a bundle directory")
            labels = read_labels(p.parent / "labels.txt") if (p.parent / "labels.txt").exists() else None
            ms = ModelSpec(p.stem, str(p), fmt, "fp32" if fmt == "onnx" and "int8" not in p.stem.lower()
                           else _guess_precision(p.stem), p.stat().st_size)
            targets.append(Target(str(p), "model", [ms], labels=labels))
        else:
            raise BenchUsageError(f"{p} does not exist" + (did_you_mean(p) or "; give a bundle directory or a "
                                                                              ".tflite/.onnx file"))
    return targets
