"""The images `edgelite bench` scores top-1 on: `--data` (a class-folder tree or an .npz) or the
bundle's held-out split, made model-ready by the same `prepare_*` path as `edgelite run`.
(The example needs a bundle and photos: skipped as a doctest.)

    >>> images, labels, source, skipped = load_data("photos/val", bundle.input, bundle.labels)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from edgelite.bench.errors import BenchUsageError
from edgelite.images import IMAGE_SUFFIXES


def read_image_folder(root: str | os.PathLike, labels: list[str] | None
                      ) -> tuple[list[np.ndarray], np.ndarray, list[str], list[str]]:
    """DIR/<class>/*.jpg -> (BGR images, label indices, labels, unreadable files skipped). Class names must be
    in `labels` when given; without labels, classes are the sorted folder names (Keras'
    image_dataset_from_directory order). A file that does not decode is skipped and listed, as in training."""
    import cv2

    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise BenchUsageError(f"--data {root} has no class folders; expected {root}/<class>/*.jpg")
    if labels is None:
        labels = classes
    unknown = [c for c in classes if c not in labels]
    if unknown:
        raise BenchUsageError(f"--data {root}: folders {unknown} are not labels of the model ({labels})")
    images: list[np.ndarray] = []
    ys: list[int] = []
    skipped: list[str] = []
    for c in classes:
        for f in sorted((root / c).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                skipped.append(f"{c}/{f.name}")
                continue
            images.append(img)
            ys.append(labels.index(c))
    if not images:
        raise BenchUsageError(f"--data {root} has no readable images ({', '.join(IMAGE_SUFFIXES)})"
                              + (f"; {len(skipped)} could not be decoded" if skipped else ""))
    return images, np.asarray(ys, dtype=np.int64), labels, skipped


def load_data(data: str | None, spec, labels: list[str] | None, heldout=None
              ) -> tuple[np.ndarray | None, np.ndarray | None, str, list[str]]:
    """Model-ready (N, H, W, 3) uint8 RGB images + label indices, a description of where they came from,
    and the unreadable files skipped (class/name).

    data: None (the bundle's held-out split, `heldout`), a folder of class sub-folders, or an .npz with
    `images` (RGB uint8) and `labels`. Images go through the same `prepare_*` path as `edgelite run`.
    """
    from edgelite.device.preprocess import prepare_bgr, prepare_rgb

    skipped: list[str] = []
    if data is None:
        if heldout is None:
            return None, None, "random", skipped
        x, y = heldout
        source = "heldout"
        rgb = list(x)
        bgr = None
    else:
        p = Path(data)
        if p.is_dir():
            bgr, y, _, skipped = read_image_folder(p, labels)
            rgb = None
        elif p.suffix == ".npz" and p.is_file():
            try:
                with np.load(p, allow_pickle=False) as z:
                    if "images" not in z or "labels" not in z:
                        raise BenchUsageError(f"--data {p} must hold arrays 'images' (N,H,W,3 RGB uint8) and 'labels'")
                    rgb, y = list(z["images"]), z["labels"]
            except (OSError, ValueError, zipfile.BadZipFile) as e:
                raise BenchUsageError(f"--data {p}: not a readable .npz of plain arrays ({str(e)[:120]})") from None
            bgr = None
        else:
            raise BenchUsageError(f"--data {p}: expected a folder of class folders or an .npz file")
        source = str(p)
        if skipped:  # named in the result's data source, so the table says what accuracy was measured on
            source += (f" ({len(skipped)} unreadable skipped: {', '.join(skipped[:5])}"
                       f"{', ...' if len(skipped) > 5 else ''})")
    if spec is None:
        return None, None, source, skipped
    out = np.empty((len(y), spec.height, spec.width, 3), np.uint8)
    for i in range(len(y)):
        if bgr is not None:
            prepare_bgr(bgr[i], spec, out=out[i])
        else:
            img = np.asarray(rgb[i])
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise BenchUsageError(f"{source}: images must be HxWx3 uint8 RGB, got {img.shape} {img.dtype}")
            prepare_rgb(img, spec, out=out[i])
    y = np.asarray(y, dtype=np.int64).ravel()
    if labels is not None and (y.min(initial=0) < 0 or y.max(initial=0) >= len(labels)):
        raise BenchUsageError(f"{source}: label indices outside 0..{len(labels) - 1}")
    return out, y, source, skipped
