"""Domain adaptation of a trained run to the device's camera, from unlabeled frames (tf-keras).

Importing this package imports nothing heavy: `adapt` loads TensorFlow when it is called.

    >>> from edgelite.adapt import adapt                                              # doctest: +SKIP
    >>> adapted = adapt("runs/demo", unlabeled="frames/", out="runs/demo-cam")       # doctest: +SKIP
"""

from __future__ import annotations


def adapt(*args, **kwargs):
    """Adapt a run to unlabeled target images; see `edgelite.adapt.core.adapt`."""
    from edgelite.adapt.core import adapt as _adapt

    return _adapt(*args, **kwargs)


__all__ = ["adapt"]
