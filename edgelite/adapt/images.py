"""The target domain's images: an unlabeled folder (searched recursively) and a labelled --eval folder.

Images are decoded with the training code's decoder and resized with the device's own resize, so
adaptation sees exactly the pixels the device will feed the model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgelite.adapt.errors import AdaptError
from edgelite.images import IMAGE_SUFFIXES, find_images


def load_unlabeled(folder: str | os.PathLike, size: int, interpolation: str, *, minimum: int, flag: str = "--unlabeled",
                   limit: int | None = None, seed: int = 0, progress: bool = False):
    """(uint8 N x size x size x 3 RGB, relative paths, skipped [(path, reason)]) of every image under `folder`."""
    root = Path(folder)
    if not root.is_dir():
        raise AdaptError(f"{flag} {root} is not a folder; pass a folder of images from the device's camera")
    files = find_images(root)
    if not files:
        raise AdaptError(f"{flag} {root} holds no images ({', '.join(IMAGE_SUFFIXES)}); collect frames from the "
                         "device's camera into it")
    if limit is not None and len(files) > limit:
        files = [files[int(i)] for i in np.sort(np.random.default_rng(seed).permutation(len(files))[:limit])]
    x, rels, skipped = decode_files(root, files, size, interpolation, progress)
    if len(x) < minimum:
        what = f"only {len(x)} readable image(s)" + (f" ({len(skipped)} unreadable, e.g. {skipped[0][0]}: "
                                                     f"{skipped[0][1]})" if skipped else "")
        raise AdaptError(f"{flag} {root}: {what}; at least {minimum} are needed to estimate the statistics "
                         "(a few hundred frames are better)")
    return x, rels, skipped


def load_labelled(folder: str | os.PathLike, labels: list[str], size: int, interpolation: str, *,
                  flag: str = "--eval", progress: bool = False):
    """(uint8 images, int64 labels, skipped) of FOLDER/<class>/* where every class is one of the run's labels."""
    root = Path(folder)
    if not root.is_dir():
        raise AdaptError(f"{flag} {root} is not a folder; pass a folder with one sub-folder per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [d.name for d in class_dirs if d.name not in labels]
    if unknown:
        raise AdaptError(f"{flag} {root}: folder(s) {', '.join(unknown[:5])} are not classes of the run "
                         f"({', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}); rename or remove them")
    files, ys = [], []
    for d in class_dirs:
        found = find_images(d)
        files += found
        ys += [labels.index(d.name)] * len(found)
    if not files:
        raise AdaptError(f"{flag} {root} holds no labelled images; put them in one sub-folder per class, "
                         f"e.g. {root}/{labels[0]}/*.jpg")
    x, rels, skipped = decode_files(root, files, size, interpolation, progress)
    keep = {r for r in rels}
    y = np.asarray([yy for f, yy in zip(files, ys, strict=True) if str(f.relative_to(root)) in keep], np.int64)
    if not len(y):
        raise AdaptError(f"{flag} {root}: none of its {len(files)} images could be decoded")
    return x, y, skipped


def decode_files(root: Path, files: list[Path], size: int, interpolation: str, progress: bool = False):
    """(uint8 N x size x size x 3 RGB, paths relative to root, skipped [(path, reason)]) of `files`, decoded as
    training decodes them and resized with the device's resize; `edgelite review --retrain` uses it too."""
    from edgelite.device.preprocess import resize
    from edgelite.train.data import decode_rgb

    out = np.empty((len(files), size, size, 3), np.uint8)
    rels: list[str] = []
    skipped: list[tuple[str, str]] = []
    it = files
    if progress:
        from tqdm import tqdm

        it = tqdm(files, desc=f"decoding {root.name}", unit="img", leave=False)
    for f in it:
        rel = str(f.relative_to(root))
        try:
            rgb = decode_rgb(f)
        except ValueError as e:
            skipped.append((rel, str(e)))
            continue
        out[len(rels)] = resize(rgb, size, size, interpolation)
        rels.append(rel)
    return out[: len(rels)], rels, skipped
