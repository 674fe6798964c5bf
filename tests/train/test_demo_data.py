"""Fashion-MNIST demo data from IDX files (Debian's dataset-fashion-mnist or any folder)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from edgelite.train import demo_data
from edgelite.train.errors import DataError


def write_idx(path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        imgs, labels = demo_data.FILES[split]
        write_idx(tmp_path / imgs, rng.integers(0, 255, (n, 28, 28)))
        write_idx(tmp_path / labels, np.arange(n) % 10)
    return tmp_path


def test_read_idx_roundtrip(idx_dir):
    x = demo_data.read_idx(idx_dir / "train-images-idx3-ubyte.gz")
    assert x.shape == (40, 28, 28) and x.dtype == np.uint8


def test_truncated_idx_is_refused(idx_dir, tmp_path):
    raw = gzip.decompress((idx_dir / "train-images-idx3-ubyte.gz").read_bytes())
    bad = tmp_path / "bad.idx"
    bad.write_bytes(raw[:-100])
    with pytest.raises(DataError, match="truncated"):
        demo_data.read_idx(bad)


def test_writes_image_folder(idx_dir, tmp_path):
    out = tmp_path / "fm"
    counts = demo_data.write_image_folder(out, per_class=5, size=32, source_dir=idx_dir)
    assert counts == {c: 5 for c in demo_data.FASHION_MNIST_CLASSES}
    from edgelite.train.data import scan

    classes, items, skipped = scan(out)
    assert classes == sorted(demo_data.FASHION_MNIST_CLASSES) and len(items) == 50 and not skipped
    # idempotent: a second call with the same settings rewrites nothing
    before = {p.name: p.stat().st_mtime_ns for p in (out / "bag").iterdir()}
    demo_data.write_image_folder(out, per_class=5, size=32, source_dir=idx_dir)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "bag").iterdir()} == before
    # other settings: the folder is rebuilt, never left holding the old images
    demo_data.write_image_folder(out, per_class=5, size=0, source_dir=idx_dir)
    import cv2

    assert all(cv2.imread(str(p)).shape[:2] == (28, 28) for p in (out / "bag").glob("*.png"))


@pytest.mark.parametrize("flag, value", [("--per-class", "-1"), ("--size", "-3"), ("--per-class", "ten")])
def test_data_cli_rejects_bad_counts(idx_dir, tmp_path, flag, value):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edgelite", "data", "fashion-mnist", str(tmp_path / "o"), flag, value,
                        "--source", str(idx_dir)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and flag in r.stderr and "Traceback" not in r.stderr


def test_too_many_per_class(idx_dir, tmp_path):
    with pytest.raises(DataError, match="--per-class 50"):
        demo_data.write_image_folder(tmp_path / "fm", per_class=50, source_dir=idx_dir)


def test_missing_source_dir(tmp_path):
    with pytest.raises(DataError, match="lacks the Fashion-MNIST IDX files"):
        demo_data.load_fashion_mnist(tmp_path)


@pytest.mark.skipif(not (demo_data.DEBIAN_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian package dataset-fashion-mnist not installed (make setup installs it)")
def test_debian_package_files():
    (xtr, ytr), (xte, yte) = demo_data.load_fashion_mnist()
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert np.bincount(ytr).tolist() == [6000] * 10


def test_heldout_images_come_from_the_test_file_class_balanced(idx_dir, tmp_path):
    out = tmp_path / "fm"
    counts = demo_data.write_image_folder(out, per_class=3, test_per_class=2, source_dir=idx_dir)
    assert counts == {c: 5 for c in demo_data.FASHION_MNIST_CLASSES}
    listed = demo_data.read_heldout_list(out)
    assert len(listed) == 20 and len(set(listed)) == 20
    by_class = {}
    for rel in listed:
        by_class.setdefault(rel.split("/")[0], []).append(rel)
    assert {c: len(v) for c, v in by_class.items()} == {c: 2 for c in demo_data.FASHION_MNIST_CLASSES}
    # every listed image is the test file's pixels, every other image the train file's
    import cv2

    (xtr, _), (xte, _) = demo_data.load_fashion_mnist(idx_dir)
    for p in out.glob("*/*.png"):
        rel = f"{p.parent.name}/{p.name}"
        i = int(p.stem.rsplit("_", 1)[1])
        src = xte if rel in listed else xtr
        assert (rel in listed) == ("_test_" in p.name)
        assert (cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) == src[i]).all()
    # settings without a held-out part remove the list, so train splits the folder itself again
    demo_data.write_image_folder(out, per_class=3, source_dir=idx_dir)
    assert demo_data.read_heldout_list(out) is None


def test_train_takes_the_listed_images_as_its_test_split(idx_dir, tmp_path):
    from edgelite.train.config import TrainConfig
    from edgelite.train.data import scan
    from edgelite.train.finetune import _split

    out = tmp_path / "fm"
    demo_data.write_image_folder(out, per_class=3, test_per_class=1, source_dir=idx_dir)
    classes, items, _ = scan(out)
    split = _split(TrainConfig(data_dir=str(out), val_split=0.3), classes, items)
    assert sorted(p for p, _ in split.test) == sorted(demo_data.read_heldout_list(out))
    assert not {p for p, _ in split.test} & {p for p, _ in split.train + split.val}
    assert len(split.train) + len(split.val) == 30 and len(split.val) == 10


def test_too_many_test_per_class(idx_dir, tmp_path):
    with pytest.raises(DataError, match="--test-per-class 3: Fashion-MNIST's test file has 2"):
        demo_data.write_image_folder(tmp_path / "fm", per_class=1, test_per_class=3, source_dir=idx_dir)


def test_data_into_a_photo_folder_deletes_no_photo_of_the_users(idx_dir, tmp_path):
    """Issue 25, item 2: `edgelite data fashion-mnist photos` deleted every PNG in photos/bag/ (and any
    heldout.txt) before writing its own. Now only its own earlier images are replaced."""
    out = tmp_path / "photos"
    (out / "bag").mkdir(parents=True)
    (out / "bag" / "my_bag.png").write_bytes(b"mine")
    demo_data.write_image_folder(out, per_class=4, size=32, source_dir=idx_dir, test_per_class=2)
    demo_data.write_image_folder(out, per_class=3, size=32, source_dir=idx_dir, test_per_class=1)  # rebuilt
    assert (out / "bag" / "my_bag.png").read_bytes() == b"mine"
    assert len([p for p in (out / "bag").glob("bag_*.png")]) == 4  # 3 + 1 held out: the old 6 replaced
    (out / "heldout.txt").write_text("bag/my_bag.png\n")  # the user's own held-out list
    with pytest.raises(DataError, match="heldout.txt was not written by `edgelite data`; choose a new or empty"):
        demo_data.write_image_folder(out, per_class=3, size=32, source_dir=idx_dir)
    assert (out / "heldout.txt").read_text() == "bag/my_bag.png\n"
