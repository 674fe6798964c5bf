"""The one table of export formats `edgelite convert` knows (stdlib only: the CLI reads it for --help).

Names follow Ultralytics where one exists (``int8``, ``fp16``, ``onnx``, ``edgetpu``) and are the
keys of :data:`edgelite.bundle.FORMATS`, the manifest's model names.
"""

from __future__ import annotations

import dataclasses
import importlib.util

from edgelite.convert.errors import ConvertError
from edgelite.errors import MissingExtra
from edgelite.formats import FORMATS
from edgelite.formats import parse_formats as parse_format_names


@dataclasses.dataclass(frozen=True)
class Export:
    name: str  # manifest model name (key of edgelite.bundle.FORMATS)
    filename: str  # file in the bundle
    source: str  # which Keras model it is exported from: float | pruned | qat
    quantization: str  # none | float16 | dynamic | full_int8 (TFLite or ONNX QDQ, calibrated) | compile | sensor
    needs: tuple[str, ...]  # importable modules (or executables "bin:NAME", the IMX500 venv "venv:imx500")
    description: str  # the log line adds where a calibrated format's images came from (Job.describe)

    @property
    def file_format(self) -> str:
        return FORMATS[self.name][0]

    @property
    def precision(self) -> str:
        return FORMATS[self.name][1]


EXPORTS: dict[str, Export] = {
    e.name: e
    for e in [
        Export("fp32", "model_fp32.tflite", "float", "none", ("tensorflow",), "float32 TFLite"),
        Export("fp16", "model_fp16.tflite", "float", "float16", ("tensorflow",), "float16 weights, float compute"),
        Export("dynamic", "model_dynamic.tflite", "float", "dynamic", ("tensorflow",),
               "int8 weights, float activations (dynamic range)"),
        Export("int8", "model_int8.tflite", "float", "full_int8", ("tensorflow",),
               "int8 weights and activations"),
        Export("pruned_int8", "model_pruned_int8.tflite", "pruned", "full_int8",
               ("tensorflow", "tensorflow_model_optimization"), "magnitude-pruned (--prune), then full int8"),
        Export("qat_int8", "model_qat_int8.tflite", "qat", "full_int8",
               ("tensorflow", "tensorflow_model_optimization"), "quantization-aware trained (--qat), int8"),
        Export("pqat_int8", "model_pqat_int8.tflite", "qat", "full_int8",
               ("tensorflow", "tensorflow_model_optimization"),
               "pruned, then sparsity-preserving QAT (--prune with --qat), int8"),
        Export("edgetpu", "model_int8_edgetpu.tflite", "int8", "compile", ("bin:edgetpu_compiler",),
               "the best int8 model compiled by edgetpu_compiler"),
        Export("onnx", "model.onnx", "float", "none", ("tf2onnx", "onnx", "onnxruntime"),
               "ONNX (tf2onnx), run by onnxruntime"),
        Export("onnx_int8", "model_int8.onnx", "float", "full_int8", ("tf2onnx", "onnx", "onnxruntime"),
               "ONNX Runtime static QDQ int8 (per-channel weights)"),
        Export("imx500", "packerOut.zip", "float", "sensor", ("venv:imx500",),
               "Raspberry Pi AI Camera: MCT int8 (IMX500 TPC) + imx500-converter; only when named"),
    ]
}

#: the pip extra (``pip install 'edgelite[EXTRA]'``) that installs each module an export needs
EXTRAS = {"tensorflow": "convert", "tensorflow_model_optimization": "convert",
          "tf2onnx": "onnx", "onnx": "onnx", "onnxruntime": "onnx"}

#: what `--formats` means when not given
DEFAULT_FORMATS = ("fp32", "fp16", "dynamic", "int8", "onnx", "edgetpu")

IO_TYPES = ("uint8", "int8", "float32")

#: quantizations calibrated on the training split (or --calibration-data)
CALIBRATED = ("full_int8", "sensor")

INT8_NAMES = ("int8", "pruned_int8", "qat_int8", "pqat_int8")
#: which int8 model the Edge TPU compiler gets, best first
EDGETPU_SOURCE_PREFERENCE = ("pqat_int8", "qat_int8", "pruned_int8", "int8")


def parse_formats(spec: str | list[str] | tuple[str, ...] | None, *, prune: float | None = None,
                  qat: bool = False) -> list[str]:
    """Resolve `--formats` (comma list or sequence, aliases allowed: `edgelite.formats.parse_formats`) plus
    what --prune/--qat add.

    --prune adds ``pruned_int8``; --qat adds ``qat_int8``, or ``pqat_int8`` together with --prune.

    >>> parse_formats("int8,onnx", prune=0.5)
    ['int8', 'pruned_int8', 'onnx']
    >>> parse_formats("tflite,half", qat=True)
    ['fp32', 'fp16', 'qat_int8']
    """
    requested = list(DEFAULT_FORMATS) if spec is None else parse_format_names(spec, error=ConvertError)
    if "pruned_int8" in requested and prune is None:
        raise ConvertError("format pruned_int8 needs --prune SPARSITY (e.g. --prune 0.5)")
    if "qat_int8" in requested and not qat:
        raise ConvertError("format qat_int8 needs --qat")
    if "pqat_int8" in requested and (prune is None or not qat):
        raise ConvertError("format pqat_int8 needs both --prune SPARSITY and --qat")
    names = {n for n in requested if n not in ("pruned_int8", "qat_int8", "pqat_int8")}
    if prune is not None:
        names.add("pruned_int8")
    if qat:
        names.add("pqat_int8" if prune is not None else "qat_int8")
    order = list(EXPORTS)  # the table's order: float exports, int8s, edgetpu, onnx
    return sorted(names, key=order.index)


def missing_module(name: str) -> str | None:
    """The first Python module the export `name` needs that is not installed (looked up, not imported)."""
    for need in EXPORTS[name].needs:
        if need == "venv:imx500":
            from edgelite.convert.imx500 import find_venv

            if find_venv() is None:
                return need
        elif not need.startswith("bin:") and importlib.util.find_spec(need) is None:
            return need
    return None


def require_one_installed(names: list[str]) -> None:
    """Stop before any work when not one of the formats the user named can be exported for want of an
    optional module: ``--formats onnx`` without tf2onnx raises MissingExtra (exit 2), naming the extra.

    When some can, convert goes on and marks the others ``export failed`` (exit 1).
    """
    missing = [missing_module(n) for n in names]
    if names and all(missing) and missing[0] == "venv:imx500":
        from edgelite.convert.imx500 import require_venv

        require_venv()  # raises the one-line `make imx500-venv` error
    if names and all(missing):
        raise MissingExtra(missing[0], EXTRAS[missing[0]], what=f"--formats {','.join(names)}")
