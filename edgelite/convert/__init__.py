"""`edgelite convert`: prune, quantize and export a trained classifier into a validated bundle.

Importing this package imports nothing heavy; TensorFlow loads when `convert` runs. The options are
one frozen dataclass, `ConvertOptions` (the CLI's flags are its fields), or the same names as keywords:

    >>> from edgelite.convert import convert                                       # doctest: +SKIP
    >>> bundle = convert("runs/demo", "bundles/demo", formats="fp32,int8,onnx")   # doctest: +SKIP
    >>> bundle.entry("int8").metrics["top1"]                                        # doctest: +SKIP
    >>> convert("runs/demo", "bundles/small", ConvertOptions(formats="int8", prune=0.5))  # doctest: +SKIP

The bundle it writes is the one contract between the workstation and the device: see the README's
Architecture section and `edgelite/bundle.py` (which reads and writes it); `edgelite convert --help` lists
the options. What it reads, a run directory, is described in `edgelite/train/rundir.py`.
"""

from __future__ import annotations

from edgelite.convert.options import ConvertOptions


def convert(*args, **kwargs):
    """Convert a run directory into a bundle; see :func:`edgelite.convert.core.convert`."""
    from edgelite.convert.core import convert as _convert

    return _convert(*args, **kwargs)


__all__ = ["ConvertOptions", "convert"]
