"""Fixtures for the device tests: a real tiny model (trained here), its real exports and bundle, a video
and an image folder of held-out images, and a helper that runs the real `edgelite run` CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before anything imports TensorFlow (the fixtures do)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.device import devicekit  # noqa: E402

ARTIFACTS = devicekit.REPO / "test-artifacts" / "device"


def edgetpu_available() -> bool:
    try:
        from edgelite.device.runtime import ModelLoadError, load_edgetpu_delegate

        load_edgetpu_delegate()
        return True
    except (ModelLoadError, ImportError):
        return False


def picamera_available() -> bool:
    try:
        from picamera2 import Picamera2

        return bool(Picamera2.global_camera_info())
    except Exception:
        return False


def pytest_runtest_setup(item):
    if item.get_closest_marker("chromium") and not devicekit.chromium_binary():
        pytest.skip("headless Chromium is not installed (make test installs it with apt: scripts/system-deps.sh)")
    if item.get_closest_marker("edgetpu") and not edgetpu_available():
        pytest.skip("no Coral Edge TPU here (libedgetpu.so.1 and the device are needed)")
    if item.get_closest_marker("picamera") and not picamera_available():
        pytest.skip("no Raspberry Pi camera here (picamera2 and a connected camera are needed)")


# ------------------------------------------------------------------------------------------ model
@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """{"bundle": Path, "heldout": (x, y), "keras_top1": float, "files": {"fp32"|"int8"|"onnx": Path}}"""
    return devicekit.build_and_export(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="session")
def bundle_dir(tiny) -> Path:
    return tiny["bundle"]


@pytest.fixture(scope="session")
def heldout(tiny):
    return tiny["heldout"]


@pytest.fixture(scope="session")
def heldout_video(tiny, tmp_path_factory) -> Path:
    """MJPG .avi: frame i = held-out image i, 3x enlarged (96x96 frames for a 32x32 model)."""
    from edgelite.device.video import write_video

    return write_video(tmp_path_factory.mktemp("video") / "heldout.avi", tiny["heldout"][0], scale=3)


@pytest.fixture(scope="session")
def heldout_folder(tiny, tmp_path_factory) -> Path:
    return devicekit.write_folder(tmp_path_factory.mktemp("frames") / "frames", tiny["heldout"][0])


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def edgelite_run():
    return devicekit.run_cmd


@pytest.fixture()
def small_card(tmp_path):
    """A real 1 MB filesystem (tmpfs), as a nearly full SD card; root only (mount)."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mnt = tmp_path / "card"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)
