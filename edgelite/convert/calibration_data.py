"""`convert --calibration-data DIR`: int8 calibration images from the target domain.

Full-integer quantization fixes every activation's range from a representative set; the default is
the run's training split. When the device's camera sees something else (another white balance,
light, lens), frames from that camera are the better representative set. DIR is searched
recursively (class sub-folders allowed, labels unused); every image goes through the device's own
preprocessing, as the training images do.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgelite.convert.errors import ConvertError


def calibration_images(folder: str | os.PathLike, spec, count: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """(uint8 N x H x W x 3 RGB, number unreadable) of at most `count` images under `folder` (a seeded sample)."""
    from edgelite.device.preprocess import prepare_rgb
    from edgelite.images import IMAGE_SUFFIXES, find_images
    from edgelite.train.data import decode_rgb

    root = Path(folder)
    if not root.is_dir():
        raise ConvertError(f"--calibration-data {root} is not a folder; pass a folder of images from the device's camera")
    files = find_images(root)
    if not files:
        raise ConvertError(f"--calibration-data {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    order = np.random.default_rng(seed).permutation(len(files))
    out, bad = [], 0
    for i in order:  # a seeded sample; unreadable files are skipped and replaced by the next ones
        if len(out) == count:
            break
        try:
            out.append(prepare_rgb(decode_rgb(files[int(i)]), spec))
        except ValueError:
            bad += 1
    if not out:
        raise ConvertError(f"--calibration-data {root}: none of its {len(files)} images could be decoded")
    return np.stack(out), bad
