"""Fine-tuning pretrained CNNs on an image folder (tf-keras). Importing this package imports nothing
heavy: `train` loads TensorFlow when it is called.

    >>> from edgelite.train import train                                      # doctest: +SKIP
    >>> run = train("photos/", out="runs/flowers", backbone="efficientnet_lite0", image_size=160)  # doctest: +SKIP
"""

from __future__ import annotations

from edgelite.train.config import TrainOptions


def train(*args, **kwargs):
    """Fine-tune a CNN on an image folder; see `edgelite.train.finetune.train`."""
    from edgelite.train.finetune import train as _train

    return _train(*args, **kwargs)


__all__ = ["TrainOptions", "train"]
