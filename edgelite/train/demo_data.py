"""Demo data: Fashion-MNIST as an image folder, from Debian's `dataset-fashion-mnist` (offline) or
keras' download when online.

    edgelite data fashion-mnist data/fashion-mnist --per-class 300
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from edgelite.train.errors import DataError
from edgelite.train.tfenv import import_keras

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
                         "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip or raw): the MNIST family's format."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{p} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{p} is truncated ({data.size} of {int(np.prod(dims))} values)")
    return data.reshape(dims)


def load_fashion_mnist(source_dir: str | os.PathLike | None = None):
    """((x_train, y_train), (x_test, y_test)) as uint8 28x28 arrays."""
    d = Path(source_dir) if source_dir else DEBIAN_DIR
    if all((d / f).exists() for pair in FILES.values() for f in pair):
        out = []
        for split in ("train", "test"):
            imgs, labels = FILES[split]
            out.append((read_idx(d / imgs), read_idx(d / labels)))
        return tuple(out)
    if source_dir:
        raise DataError(f"{d} lacks the Fashion-MNIST IDX files ({', '.join(FILES['train'] + FILES['test'])})")
    try:  # online users: keras' own download
        keras = import_keras()

        return keras.datasets.fashion_mnist.load_data()
    except Exception as e:  # no network, or no TensorFlow
        raise DataError(
            f"Fashion-MNIST is not installed and could not be downloaded ({type(e).__name__}); "
            "`sudo apt install dataset-fashion-mnist` (Debian) or run once with internet access"
        ) from None


def write_image_folder(out_dir: str | os.PathLike, *, per_class: int = 300, size: int = 0, seed: int = 0,
                       source_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """Write `per_class` PNGs per class to out_dir/<class>/ (from the train and test files, mixed).

    Returns {class: count}. size > 0 resizes (the data stays grayscale-looking; files are RGB PNGs).
    Idempotent: a folder written with the same settings (per_class, size, seed) is kept as it is.
    """
    import cv2

    (xtr, ytr), (xte, yte) = load_fashion_mnist(source_dir)
    x = np.concatenate([xtr, xte])
    y = np.concatenate([ytr, yte])
    out = Path(out_dir)
    stamp = out / ".edgelite-data.json"
    wanted = {"dataset": "fashion-mnist", "per_class": per_class, "size": size, "seed": seed}
    import json

    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return {name: per_class for name in FASHION_MNIST_CLASSES}  # already exactly this
    stamp.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    counts = {}
    for c, name in enumerate(FASHION_MNIST_CLASSES):
        idx = np.flatnonzero(y == c)
        if per_class > len(idx):
            raise DataError(f"--per-class {per_class}: Fashion-MNIST has {len(idx)} images of {name}")
        pick = np.sort(rng.choice(idx, size=per_class, replace=False))
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        for f in d.glob("*.png"):
            f.unlink()
        for i in pick:
            img = x[i]
            if size:
                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
            cv2.imwrite(str(d / f"{name}_{i:05d}.png"), cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
        counts[name] = per_class
    stamp.write_text(json.dumps(wanted))  # written last: an interrupted run is rebuilt next time
    return counts
