"""Demo data: Fashion-MNIST as an image folder, from Debian's `dataset-fashion-mnist` (offline) or
keras' download when online.

    edgelite data fashion-mnist data/fashion-mnist --per-class 300
    edgelite data fashion-mnist data/fashion-mnist --per-class 300 --test-per-class 100

With `--test-per-class N` the training images come from Fashion-MNIST's train file only and N images
per class from its own test file are written beside them and listed in DATA_DIR/heldout.txt
(HELDOUT_LIST): `edgelite train` then takes exactly those as the test split, so `convert` and
`bench` score every format on a class-balanced held-out set big enough for a 0.5-point difference
to show (10 × 100 images: a 95 % interval of about ±0.5 to ±1 point on a paired Δ top-1).
"""

from __future__ import annotations

import gzip
import os
import re
import struct
from pathlib import Path

import numpy as np

from edgelite.train.errors import DataError
from edgelite.train.tfenv import import_keras

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
                         "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
#: DATA_DIR/heldout.txt: one relative image path a line; when present, these images are the test split
HELDOUT_LIST = "heldout.txt"
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


def read_heldout_list(data_dir: str | os.PathLike) -> list[str] | None:
    """The relative paths DATA_DIR/heldout.txt pins as the test split, or None when there is no list."""
    p = Path(data_dir) / HELDOUT_LIST
    if not p.is_file():
        return None
    return [line.strip() for line in p.read_text().splitlines() if line.strip()]


def write_image_folder(out_dir: str | os.PathLike, *, per_class: int = 300, size: int = 0, seed: int = 0,
                       source_dir: str | os.PathLike | None = None, test_per_class: int = 0) -> dict[str, int]:
    """Write `per_class` PNGs per class to out_dir/<class>/ and return {class: count}.

    test_per_class == 0: the images are drawn from the train and test files, mixed, and `train`
    splits them. test_per_class > 0: `per_class` come from the train file and `test_per_class` from
    the test file (named `<class>_test_<index>.png`), listed in out_dir/heldout.txt as the held-out
    split. size > 0 resizes (the data stays grayscale-looking; files are RGB PNGs).
    Idempotent: a folder written with the same settings is kept as it is.
    """
    import cv2

    (xtr, ytr), (xte, yte) = load_fashion_mnist(source_dir)
    if test_per_class:
        pools = [("", xtr, ytr, per_class), ("test_", xte, yte, test_per_class)]
    else:
        pools = [("", np.concatenate([xtr, xte]), np.concatenate([ytr, yte]), per_class)]
    out = Path(out_dir)
    stamp = out / ".edgelite-data.json"
    wanted = {"dataset": "fashion-mnist", "per_class": per_class, "size": size, "seed": seed}
    if test_per_class:
        wanted["test_per_class"] = test_per_class
    import json

    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return {name: per_class + test_per_class for name in FASHION_MNIST_CLASSES}  # already exactly this
    stamp.unlink(missing_ok=True)
    names = "|".join(map(re.escape, FASHION_MNIST_CLASSES))
    ours = re.compile(rf"(?:{names})_(?:test_)?\d{{5}}\.png")  # the names written below
    listed = read_heldout_list(out)
    if listed is not None and all(ours.fullmatch(Path(p).name) for p in listed):
        (out / HELDOUT_LIST).unlink()  # ours: it lists only images this function wrote
    elif listed is not None:
        raise DataError(f"{out / HELDOUT_LIST} was not written by `edgelite data`; choose a new or empty folder")
    rng = np.random.default_rng(seed)
    picks: dict[str, list[tuple[str, np.ndarray, int]]] = {name: [] for name in FASHION_MNIST_CLASSES}
    for prefix, x, y, count in pools:
        flag = "--test-per-class" if prefix else "--per-class"
        for c, name in enumerate(FASHION_MNIST_CLASSES):
            idx = np.flatnonzero(y == c)
            if count > len(idx):
                where = "" if not test_per_class else "'s test file" if prefix else "'s train file"
                raise DataError(f"{flag} {count}: Fashion-MNIST{where} has {len(idx)} images of {name}")
            picks[name] += [(prefix, x, int(i)) for i in np.sort(rng.choice(idx, size=count, replace=False))]
    heldout = []
    for name, chosen in picks.items():
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        for f in d.glob("*.png"):
            if ours.fullmatch(f.name):  # only our own earlier images: never a photo someone put here
                f.unlink()
        for prefix, x, i in chosen:
            img = x[i]
            if size:
                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
            fname = f"{name}_{prefix}{i:05d}.png"
            cv2.imwrite(str(d / fname), cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
            if prefix:
                heldout.append(f"{name}/{fname}")
    if heldout:
        (out / HELDOUT_LIST).write_text("\n".join(heldout) + "\n")
    stamp.write_text(json.dumps(wanted))  # written last: an interrupted run is rebuilt next time
    return {name: len(chosen) for name, chosen in picks.items()}
