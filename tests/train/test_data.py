"""Image-folder loading: bad data gives one clear error, unreadable files are skipped and listed."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from edgelite.train import data as D
from edgelite.train.errors import DataError
from tests.train.conftest import make_shapes_dataset


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        D.find_classes(tmp_path / "nope")


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "x.jpg"
    f.write_bytes(b"x")
    with pytest.raises(DataError, match="is a file"):
        D.find_classes(f)


def test_no_class_folders(tmp_path):
    cv2.imwrite(str(tmp_path / "loose.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="no class folders"):
        D.find_classes(tmp_path)


def test_one_class(tmp_path):
    make_shapes_dataset(tmp_path, per_class=4)
    for kind in ("square", "triangle"):
        shutil.rmtree(tmp_path / kind)
    with pytest.raises(DataError, match="only one class"):
        D.find_classes(tmp_path)


def test_a_class_folder_without_images_is_named_not_called_one_class(tmp_path):
    """Issue 25, item 5: a class folder whose files edgelite cannot read (phone .heic photos) was reported
    as "only one class ('circle')" — or, with three classes, silently dropped from the model."""
    make_shapes_dataset(tmp_path, per_class=4)
    for kind in ("square", "triangle"):
        shutil.rmtree(tmp_path / kind)
    (tmp_path / "square").mkdir()
    for i in range(3):
        (tmp_path / "square" / f"IMG_{i}.HEIC").write_bytes(b"heic")
    with pytest.raises(DataError, match=r"class folder\(s\) 'square' in .* hold no images edgelite reads "
                                        r"\(.jpg, .*\) but 3 .heic files; convert them \(e.g. to .jpg\)"):
        D.find_classes(tmp_path)
    (tmp_path / "triangle").mkdir()
    (tmp_path / "square" / "ok.png").write_bytes((tmp_path / "circle").rglob("*.png").__next__().read_bytes())
    with pytest.raises(DataError, match=r"class folder\(s\) 'triangle' in .* are empty; add images or remove"):
        D.find_classes(tmp_path)  # three folders, two with images: not a two-class model without a word


def test_class_with_too_few_images(tmp_path):
    make_shapes_dataset(tmp_path, per_class=6, nested=False)
    for f in sorted((tmp_path / "square").iterdir())[2:]:
        f.unlink()
    classes, items, _ = D.scan(tmp_path)
    with pytest.raises(DataError, match=r"too few readable images in class square \(2\)"):
        D.stratified_split(items, classes)


def test_no_readable_images(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "broken.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="no readable images"):
        D.scan(tmp_path)


def test_corrupt_and_truncated_files_are_skipped_and_listed(tmp_path):
    make_shapes_dataset(tmp_path, per_class=5, nested=False)
    good = sorted((tmp_path / "circle").glob("*.jpg"))[0]
    raw = good.read_bytes()
    (tmp_path / "circle" / "truncated.jpg").write_bytes(raw[: len(raw) // 2])
    png = sorted((tmp_path / "square").glob("*.png"))[0].read_bytes()
    (tmp_path / "square" / "truncated.png").write_bytes(png[: len(png) - 30])
    (tmp_path / "triangle" / "text.webp").write_bytes(b"hello")
    (tmp_path / "triangle" / "notes.txt").write_text("ignored: not an image extension")
    classes, items, skipped = D.scan(tmp_path)
    names = sorted(s.path for s in skipped)
    assert names == ["circle/truncated.jpg", "square/truncated.png", "triangle/text.webp"]
    assert all(s.reason for s in skipped)
    assert len(items) == 15
    D.write_skipped(tmp_path / "skipped.txt", skipped)
    lines = (tmp_path / "skipped.txt").read_text().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == [s.path for s in skipped]


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "1"])
def test_odd_image_modes_become_rgb(tmp_path, mode):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :15] = (200, 40, 10)
    im = Image.fromarray(rgb)
    if mode == "I;16":
        im = Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257)
        assert im.mode == "I;16"
        path = tmp_path / "x.png"
    else:
        im = im.convert(mode)
        path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    im.save(path)
    out = D.decode_rgb(path)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode == "I;16":  # 16-bit scaled to 8-bit, not clipped to white
        assert 20 < out[0, 0, 0] < 120 and out[0, 29, 0] == 0


def test_rgba_transparency_becomes_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    Image.fromarray(a, "RGBA").save(tmp_path / "t.png")
    assert (D.decode_rgb(tmp_path / "t.png") == 255).all()


def test_split_is_deterministic_stratified_and_saved(tmp_path):
    make_shapes_dataset(tmp_path, per_class=20)
    classes, items, _ = D.scan(tmp_path)
    s1 = D.stratified_split(items, classes, val_split=0.2, test_split=0.2, seed=7, data_dir=str(tmp_path))
    s2 = D.stratified_split(list(reversed(items)), classes, val_split=0.2, test_split=0.2, seed=7,
                            data_dir=str(tmp_path))
    s3 = D.stratified_split(items, classes, val_split=0.2, test_split=0.2, seed=8, data_dir=str(tmp_path))
    assert s1.test == s2.test and s1.val == s2.val and s1.train == s2.train
    assert s1.test != s3.test
    for sub, n in ((s1.test, 4), (s1.val, 4), (s1.train, 12)):
        assert np.bincount([y for _, y in sub]).tolist() == [n, n, n]
    all_paths = [p for p, _ in s1.train + s1.val + s1.test]
    assert len(all_paths) == len(set(all_paths)) == 60
    assert any("batch2/" in p for p in all_paths)  # found recursively
    s1.save(tmp_path / "split.json")
    assert D.Split.load(tmp_path / "split.json") == s1
    assert json.loads((tmp_path / "split.json").read_text())["classes"] == ["circle", "square", "triangle"]


def test_bad_split_fractions(tmp_path):
    make_shapes_dataset(tmp_path, per_class=5)
    classes, items, _ = D.scan(tmp_path)
    with pytest.raises(DataError, match="sum below 1"):
        D.stratified_split(items, classes, val_split=0.6, test_split=0.5)


def test_load_images_uses_device_resize(tmp_path):
    from edgelite.device.preprocess import resize

    make_shapes_dataset(tmp_path, per_class=3, nested=False)
    items = [("circle/circle_001.png", 0)]
    x, y, skipped = D.load_images(tmp_path, items, (32, 40))
    ref = resize(cv2.cvtColor(cv2.imread(str(tmp_path / items[0][0])), cv2.COLOR_BGR2RGB), 32, 40, "bilinear")
    assert x.shape == (1, 32, 40, 3) and not skipped
    np.testing.assert_array_equal(x[0], ref)


def test_class_weights_balanced():
    w = D.class_weights(np.array([0, 0, 0, 1]), 2)
    assert w[1] == pytest.approx(3 * w[0])


def test_scan_keeps_the_decoded_pixels_so_training_decodes_once(tmp_path, monkeypatch):
    make_shapes_dataset(tmp_path, per_class=4, nested=False)
    calls = []
    real = D.decode_rgb
    monkeypatch.setattr(D, "decode_rgb", lambda p: calls.append(p) or real(p))
    classes, items, skipped, pixels = D.scan(tmp_path, size=(24, 32))
    assert len(calls) == len(items) == 12 and set(pixels) == {p for p, _ in items}
    monkeypatch.setattr(D, "decode_rgb", real)
    x, _, _ = D.load_images(tmp_path, items, (24, 32))
    np.testing.assert_array_equal(np.stack([pixels[p] for p, _ in items]), x)
