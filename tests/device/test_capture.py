"""`edgelite capture`: real frames from a real video file and image folder, through the same `open_source`
path `edgelite run` uses, into DATA_DIR/LABEL/ — and `edgelite train`'s own folder scan accepts them."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgelite.device.capture import CaptureOptions, capture
from edgelite.device.video import write_video
from edgelite.train.data import find_classes
from tests.device import devicekit


def _capture_cli(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgelite", "capture", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=devicekit.cli_env(), cwd=devicekit.REPO)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 60-frame MJPG clip at 30 fps (2 s), 96x96 frames of distinct synthetic images."""
    images, _ = devicekit.synth_images(60, seed=7)
    return write_video(tmp_path_factory.mktemp("clip") / "clip.avi", images, scale=3, fps=30.0), images


def test_capture_saves_count_frames_of_a_video_into_the_label_folder_ready_for_train(clip, tmp_path):
    path, _ = clip
    p = _capture_cli("--source", path, "--out", tmp_path / "data", "--label", "cat", "--every", "0", "--count", "12")
    assert p.returncode == 0, p.stderr
    saved = sorted((tmp_path / "data" / "cat").glob("*.jpg"))
    assert len(saved) == 12, p.stdout
    assert "saved 12 frames" in p.stdout and "edgelite train" in p.stdout
    first = cv2.imread(str(saved[0]))
    assert first is not None and first.shape == (96, 96, 3)  # the camera's full frame, not the model's size
    # a second class from the same camera, and train's scan sees a two-class dataset of these very files
    assert _capture_cli("--source", path, "--out", tmp_path / "data", "--label", "dog", "--every", "0",
                        "--count", "5").returncode == 0
    classes, files = find_classes(tmp_path / "data")
    assert classes == ["cat", "dog"] and len(files["cat"]) == 12 and len(files["dog"]) == 5
    assert not list((tmp_path / "data").rglob(".*"))  # no half-written .part file left behind


def test_capture_every_spaces_frames_in_camera_seconds(clip, tmp_path):
    """A 2 s clip played at its frame rate with --every 0.5 keeps about 4 frames, and they differ."""
    path, _ = clip
    s = capture(CaptureOptions(source=str(path), out=str(tmp_path), label="x", every=0.5))
    assert s.reason == "end of source"
    assert 3 <= s.saved <= 5, s
    assert s.seen > s.saved
    imgs = [cv2.imread(str(f)).astype(np.int16) for f in sorted((tmp_path / "x").glob("*.jpg"))]
    assert all(np.abs(a - b).mean() > 5 for a, b in zip(imgs, imgs[1:], strict=False))  # not the same frame twice


def test_capture_from_an_image_folder_and_a_second_session_adds_to_the_first(tmp_path):
    images, _ = devicekit.synth_images(8, seed=3)
    src = devicekit.write_folder(tmp_path / "frames", images)
    for _ in range(2):
        s = capture(CaptureOptions(source=str(src), out=str(tmp_path / "data"), label="red", every=0))
        assert s.saved == 8
    assert len(list((tmp_path / "data" / "red").glob("*.jpg"))) == 16  # same-millisecond names never overwrite


@pytest.mark.parametrize("argv, message", [
    (["--label", "../cat"], "--label '../cat': a class name is one folder name"),
    (["--label", ".hidden"], "a class name is one folder name"),
    (["--label", "cat", "--count", "0"], "--count must be at least 1"),
    (["--label", "cat", "--every", "-1"], "--every must be >= 0"),
    (["--label", "cat", "--source", "no/such/clip.mp4"], "is not a camera index"),
])
def test_capture_bad_input_is_one_line_and_exit_2(tmp_path, argv, message):
    p = _capture_cli("--out", tmp_path / "data", *(["--source", str(tmp_path)] if "--source" not in argv else []),
                     *argv)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgelite capture: error: ") and message in lines[0], p.stderr
    assert not (tmp_path / "data" / "cat").exists() or not any((tmp_path / "data" / "cat").iterdir())
