"""The device's pins when it has a system numpy (edgelite/deploy/sysnumpy.py): Bookworm's 1.24, Trixie's 2.2."""

from __future__ import annotations

from pathlib import Path

from edgelite.deploy import sysnumpy

ROOT = Path(__file__).resolve().parents[2]
PINS = "numpy==2.4.6\nopencv-python-headless==5.0.0.93\nml_dtypes==0.6.0\nai-edge-litert==2.3.0\n"


def test_bookworm_numpy_is_kept_and_the_runtime_stays_pinned(tmp_path):
    src = tmp_path / "constraints.txt"
    src.write_text(PINS)
    out = sysnumpy.device_constraints(src, "1.24.2", tmp_path)
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert lines == ["numpy==1.24.2", "ai-edge-litert==2.3.0"]  # OpenCV, ml_dtypes: whatever works with 1.24
    assert sysnumpy.device_constraints(src, "1.24.2", tmp_path) == out  # same pins, same file


def test_trixie_numpy_is_kept_with_the_other_checkout_pins(tmp_path):
    src = tmp_path / "constraints.txt"
    src.write_text(PINS)
    out = sysnumpy.device_constraints(src, "2.2.4", tmp_path)  # same major version: the other pins go with it
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert lines == ["numpy==2.2.4", "opencv-python-headless==5.0.0.93", "ml_dtypes==0.6.0", "ai-edge-litert==2.3.0"]


def test_other_devices_keep_the_checkout_pins(tmp_path):
    src = tmp_path / "constraints.txt"
    src.write_text(PINS)
    assert sysnumpy.device_constraints(src, None, tmp_path) == src  # no system numpy (Pi OS Lite, the chroot)
    assert sysnumpy.device_constraints(src, "1.19.5", tmp_path) == src  # Bullseye's: too old for edgelite
