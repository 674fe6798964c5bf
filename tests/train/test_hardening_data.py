"""Issue #11 finding 9: training data edge cases. A file or class folder whose name is not UTF-8 is
written to skipped.txt / labels.txt and read back (it made the write raise after the old run was gone);
a small PNG that declares 10000 x 10000 16-bit pixels is skipped with its reason instead of decoded."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgelite.train.data import Skipped, decode_rgb, read_skipped, scan, write_skipped
from edgelite.train.rundir import RunDir

BAD_NAME = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: a surrogate escape in Python, not UTF-8


def test_skipped_names_that_are_not_utf8_round_trip(tmp_path):
    rows = [Skipped(f"cats/{BAD_NAME}", "cannot identify image file"), Skipped("dogs/ok.png", "truncated")]
    write_skipped(tmp_path / "skipped.txt", rows)
    assert read_skipped(tmp_path / "skipped.txt") == rows
    assert b"caf\xe9.png" in (tmp_path / "skipped.txt").read_bytes()  # the name's own bytes, as on disk


def test_a_class_folder_that_is_not_utf8_gives_a_readable_run(tmp_path):
    labels = [os.fsdecode(b"\xe9t\xe9"), "hiver"]
    run = RunDir(tmp_path / "run", labels=labels, skipped=[Skipped(f"{labels[0]}/{BAD_NAME}", "unreadable")])
    run.save()
    from edgelite.train.rundir import _labels

    assert _labels(run.file("labels.txt")) == labels
    assert read_skipped(run.file("skipped.txt"))[0].path == f"{labels[0]}/{BAD_NAME}"


def _png_16bit(path: Path, width: int, height: int) -> Path:
    """A real 16-bit grayscale PNG of zeros, written row by row (never the whole image in memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\0" * (1 + 2 * width)  # filter byte + 2 bytes a pixel
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_skipped_with_its_reason(tmp_path):
    bomb = _png_16bit(tmp_path / "bomb.png", 10000, 10000)
    assert bomb.stat().st_size < 400_000
    with pytest.raises(ValueError, match="megapixels, over the 50 MP limit"):
        decode_rgb(bomb)
    for cls in ("a", "b"):
        d = tmp_path / "data" / cls
        d.mkdir(parents=True)
        for i in range(3):
            _png_16bit(d / f"{i}.png", 8, 8)
    os.replace(bomb, tmp_path / "data" / "a" / "bomb.png")
    classes, items, skipped = scan(tmp_path / "data")
    assert len(items) == 6 and [s.path for s in skipped] == ["a/bomb.png"] and "megapixels" in skipped[0].reason


def test_16_bit_images_still_convert_to_8_bit_rgb(tmp_path):
    from PIL import Image

    a = np.array([[0, 32768, 65535]], np.uint16)
    Image.fromarray(a).save(tmp_path / "g.png")
    rgb = decode_rgb(tmp_path / "g.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 3, 3) and rgb[0, :, 0].tolist() == [0, 128, 255]
