"""The model formats, written once: their names, the spellings users bring, and the file-name rule.

Standard library only, so `convert` (workstation), `run`, `bench` (device) and the manifest
(`edgelite.bundle` re-exports `FORMATS`) share one vocabulary:

* `FORMATS` — manifest model name -> (file format, precision); names follow Ultralytics where one exists;
* `ALIASES` — other spellings (`tflite`, `half`, `edge-tpu`, ...) for `--formats` and `--format`;
* `parse_formats` — a `--formats` list (comma text or a sequence) -> canonical names, in order;
* `model_format` — a model file's suffix -> its file format (`tflite`, `edgetpu`, `onnx`).

    >>> parse_formats("INT8, half,tflite,int8")
    ['int8', 'fp16', 'fp32']
    >>> model_format("m_int8_edgetpu.TFLite"), model_format("model.onnx"), model_format("x.pb")
    ('edgetpu', 'onnx', None)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from edgelite.errors import UsageError

#: model entry name -> (file format, precision)
FORMATS: dict[str, tuple[str, str]] = {
    "fp32": ("tflite", "fp32"),
    "fp16": ("tflite", "fp16"),
    "dynamic": ("tflite", "dynamic"),
    "int8": ("tflite", "int8"),
    "pruned_int8": ("tflite", "int8"),
    "qat_int8": ("tflite", "int8"),
    "pqat_int8": ("tflite", "int8"),
    "edgetpu": ("edgetpu", "int8"),
    "onnx": ("onnx", "fp32"),
    "onnx_int8": ("onnx", "int8"),
    "imx500": ("imx500", "int8"),
}

#: other spellings users bring from Ultralytics / TFLite docs (after lower-casing and '-' -> '_')
ALIASES = {
    "tflite": "fp32", "float32": "fp32", "float16": "fp16", "half": "fp16", "dynamic_range": "dynamic",
    "full_integer": "int8", "uint8": "int8", "edge_tpu": "edgetpu", "edgetpu_tflite": "edgetpu",
    "pruned": "pruned_int8", "qat": "qat_int8", "pqat": "pqat_int8", "onnx_qdq": "onnx_int8",
    "ai_camera": "imx500", "packerout": "imx500",
}

#: formats that run on an accelerator inside a camera, never on this CPU: `run` and `bench` pick them only
#: when named (`--source imx500`), never by default
SENSOR_FORMATS = ("imx500",)

#: file suffix -> file format; a .tflite whose stem ends in EDGETPU_STEM is compiled for the Edge TPU
MODEL_SUFFIXES = {".tflite": "tflite", ".onnx": "onnx"}
EDGETPU_STEM = "_edgetpu"


def canonical(name: str) -> str:
    """A format name as the manifest spells it (aliases resolved; not checked): 'Edge-TPU' -> 'edgetpu'."""
    key = name.strip().lower().replace("-", "_")
    return ALIASES.get(key, key)


def parse_formats(spec: str | Sequence[str], *, error: type[UsageError] = UsageError,
                  flag: str = "--formats") -> list[str]:
    """Canonical format names from a comma list or a sequence, in the order given, duplicates dropped.

    An unknown or empty list raises `error` (each command passes its own UsageError subclass).
    """
    names: list[str] = []
    for raw in spec.split(",") if isinstance(spec, str) else spec:
        if not str(raw).strip():
            continue
        key = canonical(str(raw))
        if key not in FORMATS:
            raise error(f"unknown format {str(raw).strip()!r} in {flag}; choose from {', '.join(FORMATS)}")
        if key not in names:
            names.append(key)
    if not names:
        raise error(f"{flag} is empty; e.g. {flag} fp32,int8,onnx")
    return names


def model_format(path: str | os.PathLike) -> str | None:
    """"onnx" / "edgetpu" / "tflite" from a model file's name (any case), or None for anything else."""
    p = Path(path)
    fmt = MODEL_SUFFIXES.get(p.suffix.lower())
    if fmt == "tflite" and p.stem.lower().endswith(EDGETPU_STEM):
        return "edgetpu"
    return fmt


def edgetpu_filename(path: str | os.PathLike) -> str:
    """The file name `edgetpu_compiler` gives the compiled copy of a .tflite: model_int8.tflite ->
    model_int8_edgetpu.tflite."""
    return f"{Path(path).stem}{EDGETPU_STEM}.tflite"
