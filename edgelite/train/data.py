"""Image-folder datasets: scan, decode once, skip and list the unreadable, split deterministically.

    photos/
      cat/ a.jpg b.png ...      one sub-folder per class (searched recursively)
      dog/ ...

Every file is decoded once up front (Pillow), converted to RGB (grayscale, palette, RGBA, CMYK and
16-bit images included) and resized to the model input with the device's own resize code, so
training sees exactly the pixels the device will feed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from edgelite.errors import first_line
from edgelite.images import IMAGE_SUFFIXES
from edgelite.suggest import did_you_mean
from edgelite.train.errors import DataError

MIN_IMAGES_PER_CLASS = 3  # one each for train, val and test
MAX_PIXELS = 50_000_000  # an 8K photo is 33 MP; a 190 KB PNG can declare 10000 x 10000 16-bit (2.5 GB to decode)
#: text files of a run (labels.txt, skipped.txt) hold file and folder names as the OS gave them: a name
#: that is not UTF-8 round-trips through its surrogate escapes instead of failing half-way through a write
TEXT = {"encoding": "utf-8", "errors": "surrogateescape"}


@dataclasses.dataclass
class Skipped:
    path: str
    reason: str


@dataclasses.dataclass
class Split:
    """A deterministic stratified split; paths are relative to data_dir. A run saves it (`rundir.SPLIT`)."""

    data_dir: str
    classes: list[str]
    seed: int
    val_split: float
    test_split: float
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    test: list[tuple[str, int]]

    def save(self, path: str | os.PathLike) -> None:
        d = dataclasses.asdict(self)
        for k in ("train", "val", "test"):
            d[k] = [[p, int(y)] for p, y in d[k]]
        Path(path).write_text(json.dumps(d, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Split:
        try:
            d = json.loads(Path(path).read_text())
            for k in ("train", "val", "test"):
                d[k] = [(str(p), int(y)) for p, y in d[k]]
            return cls(**d)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise DataError(f"cannot read split file {path} ({e}); re-run `edgelite train`") from None

    def subset(self, name: str) -> list[tuple[str, int]]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, name)


def find_classes(data_dir: str | os.PathLike) -> tuple[list[str], dict[str, list[str]]]:
    """(sorted class names, class -> sorted relative image paths), with clear errors for bad folders."""
    root = Path(data_dir)
    if not root.exists():
        raise DataError(f"data folder {root} does not exist" + (did_you_mean(root) or "; pass a folder with one "
                                                                 "sub-folder of images per class"))
    if not root.is_dir():
        raise DataError(f"{root} is a file; pass a folder with one sub-folder of images per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root} has no class folders; put each class's images in its own sub-folder, e.g. {root}/cat/*.jpg")
    files: dict[str, list[str]] = {}
    for d in class_dirs:
        found = sorted(
            str(p.relative_to(root))
            for p in d.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if found:
            files[d.name] = found
    if not files:
        held = _what_is_there(class_dirs)
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}'s class folders"
                        + (f"; they hold {held}" if held else ""))
    empty = [d for d in class_dirs if d.name not in files]
    if empty:  # never drop a class without a word: it would vanish from the model
        names = ", ".join(repr(d.name) for d in empty)
        held = _what_is_there(empty)
        if not held:
            raise DataError(f"class folder(s) {names} in {root} are empty; add images or remove the folder(s)")
        raise DataError(f"class folder(s) {names} in {root} hold no images edgelite reads ({', '.join(IMAGE_SUFFIXES)})"
                        f" but {held}; convert them (e.g. to .jpg) or remove the folder(s)")
    if len(files) < 2:
        raise DataError(f"only one class ({next(iter(files))!r}) in {root}; a classifier needs at least two class folders")
    return sorted(files), files


def _what_is_there(dirs: Sequence[Path]) -> str:
    """'3 .heic, 1 .gif files': what the folders hold instead of images ('' when nothing)."""
    counts: dict[str, int] = {}
    for d in dirs:
        for p in d.rglob("*"):
            if p.is_file() and not p.name.startswith("."):
                key = p.suffix.lower() or "(no suffix)"
                counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1])) + " files" if counts else ""


def decode_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file fully to an HxWx3 uint8 RGB array; raises ValueError with the reason."""
    from PIL import Image, ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBomb and palette warnings
        try:
            with Image.open(path) as im:  # reads the header only
                if im.width * im.height > MAX_PIXELS:
                    raise ValueError(f"{im.width}x{im.height} is {im.width * im.height / 1e6:.0f} megapixels, over the "
                                     f"{MAX_PIXELS / 1e6:.0f} MP limit; resize the photo")
                im.load()  # forces the full decode: truncated files raise here
                return _to_rgb(im)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise ValueError(first_line(e)) from None


def _to_rgb(im) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float32)  # 4 bytes a pixel, not 8: half the peak of a big 16-bit image
        hi = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        from PIL import Image

        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparent pixels become white
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    if mode == "RGB":
        return np.asarray(im)
    return np.asarray(im.convert("RGB"))  # L, P, CMYK, YCbCr, 1, ...


def _decoded(root: Path, items: Sequence[tuple[str, int]], skipped: list[Skipped], progress: bool,
             desc: str) -> Iterator[tuple[str, int, np.ndarray]]:
    """(relative path, label, RGB pixels) of each item that decodes, in order; one that does not is
    appended to `skipped` with why."""
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=desc, unit="img", leave=False)
    for rel, y in items:
        try:
            rgb = decode_rgb(root / rel)
        except ValueError as e:
            skipped.append(Skipped(rel, str(e)))
            continue
        yield rel, y, rgb


def load_images(
    data_dir: str | os.PathLike,
    items: Sequence[tuple[str, int]],
    size: tuple[int, int],
    interpolation: str = "bilinear",
    progress: bool = False,
    desc: str = "decoding",
) -> tuple[np.ndarray, np.ndarray, list[Skipped]]:
    """Decode + resize `items` -> (uint8 N x H x W x 3, int32 labels, skipped)."""
    from edgelite.device.preprocess import resize

    h, w = size
    out = np.empty((len(items), h, w, 3), np.uint8)
    labels = np.empty((len(items),), np.int32)
    skipped: list[Skipped] = []
    n = 0
    for _, y, rgb in _decoded(Path(data_dir), items, skipped, progress, desc):
        out[n] = resize(rgb, h, w, interpolation)
        labels[n] = y
        n += 1
    return out[:n], labels[:n], skipped


def scan(data_dir: str | os.PathLike, progress: bool = False, size: tuple[int, int] | None = None,
         interpolation: str = "bilinear"):
    """(classes, readable (path, label) items, skipped) — every file decoded once to find the bad ones.

    With `size`, the decoded pixels are kept too, resized as the device resizes, and a fourth value
    is returned: {relative path: uint8 HxWx3 RGB}, so training never decodes a file twice.
    """
    from edgelite.device.preprocess import resize

    classes, files = find_classes(data_dir)
    items, skipped = [], []
    pixels: dict[str, np.ndarray] = {}
    all_items = [(p, i) for i, c in enumerate(classes) for p in files[c]]
    for rel, y, rgb in _decoded(Path(data_dir), all_items, skipped, progress, "decoding images"):
        items.append((rel, y))
        if size is not None:
            pixels[rel] = resize(rgb, size[0], size[1], interpolation)
    if not items:
        raise DataError(f"no readable images under {data_dir} ({len(skipped)} files could not be decoded)")
    if size is not None:
        return classes, items, skipped, pixels
    return classes, items, skipped


def stratified_split(
    items: Sequence[tuple[str, int]],
    classes: Sequence[str],
    *,
    val_split: float = 0.1,
    test_split: float = 0.1,
    seed: int = 0,
    data_dir: str = "",
    min_per_class: int = MIN_IMAGES_PER_CLASS,
) -> Split:
    """Per class: shuffle with `seed`, then take test, val, and the rest for train (at least one each)."""
    if not (0 <= val_split < 1 and 0 <= test_split < 1 and val_split + test_split < 1):
        raise DataError(f"--val-split {val_split} and --test-split {test_split} must be in [0, 1) and sum below 1")
    by_class: dict[int, list[str]] = {}
    for p, y in items:
        by_class.setdefault(y, []).append(p)
    too_few = [f"{classes[y]} ({len(by_class.get(y, []))})" for y in range(len(classes))
               if len(by_class.get(y, [])) < min_per_class]
    if too_few:
        raise DataError(f"too few readable images in class {', '.join(too_few)}: each class needs at least "
                        f"{min_per_class} (one for train, val and test); add images or remove the folder")
    rng = random.Random(seed)
    train, val, test = [], [], []
    for y in sorted(by_class):
        paths = sorted(by_class[y])
        rng.shuffle(paths)
        n = len(paths)
        n_test = max(1, int(round(n * test_split))) if test_split > 0 else 0
        n_val = max(1, int(round(n * val_split))) if val_split > 0 else 0
        n_test = min(n_test, n - 1 - (1 if n_val else 0)) if n_test else 0
        test += [(p, y) for p in paths[:n_test]]
        val += [(p, y) for p in paths[n_test : n_test + n_val]]
        train += [(p, y) for p in paths[n_test + n_val :]]
    return Split(data_dir=str(data_dir), classes=list(classes), seed=seed, val_split=val_split,
                 test_split=test_split, train=train, val=val, test=test)


def write_skipped(path: str | os.PathLike, skipped: Sequence[Skipped]) -> None:
    """One ``path<TAB>reason`` line per unreadable file."""
    lines = [f"{s.path}\t{s.reason}" for s in skipped]
    Path(path).write_text("".join(line + "\n" for line in lines), **TEXT)


def read_skipped(path: str | os.PathLike) -> list[Skipped]:
    """The list `write_skipped` wrote."""
    rows = (line.partition("\t") for line in Path(path).read_text(**TEXT).splitlines() if line.strip())
    return [Skipped(rel, reason) for rel, _, reason in rows]


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Balanced class weights n / (k * n_c), as scikit-learn's 'balanced'."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    n = counts.sum()
    return {i: float(n / (num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}
