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
    (["--label", "cat", "--min-free", "-1"], "--min-free must be at least 0 MB"),
    (["--label", "cat", "--source", "no/such/clip.mp4"], "is not a camera index"),
])
def test_capture_bad_input_is_one_line_and_exit_2(tmp_path, argv, message):
    p = _capture_cli("--out", tmp_path / "data", *(["--source", str(tmp_path)] if "--source" not in argv else []),
                     *argv)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgelite capture: error: ") and message in lines[0], p.stderr
    assert not (tmp_path / "data" / "cat").exists() or not any((tmp_path / "data" / "cat").iterdir())


def _whole_jpegs(folder) -> list:
    """The frames in `folder`; fails on a half-written one (a hidden `.part`, or a JPEG OpenCV cannot read)."""
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], list(folder.iterdir())
    files = sorted(folder.glob("*.jpg"))
    assert all(cv2.imread(str(f)) is not None for f in files)
    return files


def test_a_card_that_fills_mid_capture_ends_cleanly_with_the_frames_that_fit(clip, small_card):
    """A 1 MB card with ~150 KB left, no low-water mark (--min-free 0): the card fills after a few frames.
    capture reads the clip to its end, says once that it cannot write, exits 0 with what it saved and what
    it could not, and leaves only whole JPEGs. On the parent commit the first ENOSPC ended it (exit 2,
    no summary of the frames saved)."""
    path, _ = clip
    (small_card / "filler").write_bytes(b"x" * 900_000)
    p = _capture_cli("--source", path, "--out", small_card / "data", "--label", "cat", "--every", "0",
                     "--min-free", "0")
    assert p.returncode == 0, p.stderr
    files = _whole_jpegs(small_card / "data" / "cat")
    assert 0 < len(files) < 60
    said = [ln for ln in p.stderr.splitlines() if "not saving frames" in ln]
    assert len(said) == 1 and "No space left on device" in said[0] and "Traceback" not in p.stderr, p.stderr
    assert f"saved {len(files)} frames of 60 read" in p.stdout and f"{60 - len(files)} not saved" in p.stdout, p.stdout


def test_capture_pauses_under_min_free_and_resumes_when_room_returns(clip, small_card):
    """~100 KB free, --min-free 0.5 MB: nothing is written and that is said once (free vs the mark, what to do);
    the filler removed while capture runs, it saves again by itself (and says so). The clip plays in real time
    (2 s), one frame due every 0.05 s. On the parent commit there was no --min-free: it wrote to the last block."""
    import threading

    path, _ = clip
    filler = small_card / "filler"
    filler.write_bytes(b"x" * 900_000)
    lines: list[str] = []
    timer = threading.Timer(0.8, filler.unlink)
    timer.start()
    try:
        s = capture(CaptureOptions(source=str(path), out=str(small_card / "data"), label="cat", every=0.05,
                                   min_free=0.5), retry_s=0.1, say=lines.append)
    finally:
        timer.cancel()
    assert len(lines) == 2, lines
    assert "MB free on the filesystem of" in lines[0] and "under --min-free 0.5 MB" in lines[0]
    assert "free some space" in lines[0] and "saving frames in" in lines[1] and "again" in lines[1]
    files = _whole_jpegs(small_card / "data" / "cat")
    assert s.saved == len(files) > 0 and s.unsaved > 0 and "under --min-free" in s.line()


def test_capture_with_no_room_at_all_is_one_line_and_saves_nothing(clip, small_card):
    """Under the low-water mark from start to end: one error line with free vs the mark, no traceback, no file."""
    path, _ = clip
    (small_card / "filler").write_bytes(b"x" * 900_000)
    p = _capture_cli("--source", path, "--out", small_card / "data", "--label", "cat", "--every", "0",
                     "--min-free", "0.5")
    assert p.returncode == 2, p.stderr
    error = p.stderr.strip().splitlines()[-1]
    assert error.startswith("edgelite capture: error: nothing saved into ") and "under --min-free 0.5 MB" in error
    assert "Traceback" not in p.stderr and not list((small_card / "data" / "cat").iterdir())
