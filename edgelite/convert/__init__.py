"""`edgelite convert`: prune, quantize and export a trained classifier into a validated bundle.

Importing this package imports nothing heavy; TensorFlow loads when `convert` runs.

    >>> from edgelite.convert import convert                                       # doctest: +SKIP
    >>> bundle = convert("runs/demo", "bundles/demo", formats="fp32,int8,onnx")   # doctest: +SKIP
    >>> bundle.entry("int8").metrics["top1"]                                        # doctest: +SKIP

The bundle it writes is the one contract between the workstation and the device: see the README's
Architecture section and `edgelite/bundle.py` (which reads and writes it); `edgelite convert --help` lists
the options. What it reads, a run directory, is described in `edgelite/train/rundir.py`.
"""

from __future__ import annotations


def convert(*args, **kwargs):
    """Convert a run directory into a bundle; see :func:`edgelite.convert.core.convert`."""
    from edgelite.convert.core import convert as _convert

    return _convert(*args, **kwargs)


__all__ = ["convert"]
