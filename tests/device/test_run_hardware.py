"""Hardware-only paths: the Coral Edge TPU and the Raspberry Pi camera.

On the hardware (markers `edgetpu`, `picamera`) they run for real; everywhere else the tests below them
check what a user without the hardware sees: a clear one-line error, or the CPU fallback in auto mode.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from edgelite.bundle import Bundle, ModelEntry
from edgelite.device import run
from tests.device import devicekit


def bundle_with_edgetpu_entry(tiny, tmp_path) -> Path:
    """A copy of the test bundle plus an `edgetpu` entry (the int8 file: only the delegate is missing here)."""
    root = tmp_path / "bundle"
    shutil.copytree(tiny["bundle"], root)
    shutil.copy(root / "model_int8.tflite", root / "model_int8_edgetpu.tflite")
    b = Bundle.load(root)
    b.add_file(ModelEntry(name="edgetpu", path="model_int8_edgetpu.tflite", format="edgetpu", precision="int8"))
    b.save()
    return root


@pytest.mark.edgetpu
def test_edgetpu_model_runs_on_the_stick(tiny, heldout_video):
    """Needs a Coral stick and a compiled model: EDGELITE_EDGETPU_BUNDLE (a bundle with an edgetpu entry)."""
    bundle = os.environ.get("EDGELITE_EDGETPU_BUNDLE")
    if not bundle:
        pytest.skip("set EDGELITE_EDGETPU_BUNDLE to a bundle holding an edgetpu model")
    s = run(bundle, source=str(heldout_video), edgetpu=True, max_frames=50, print_every=0, handle_signals=False)
    assert s.exit_code == 0 and s.model == "edgetpu" and s.frames == 50
    assert run(bundle, source=str(heldout_video), max_frames=5, print_every=0, handle_signals=False).model == "edgetpu"


@pytest.mark.picamera
def test_picamera2_source(tiny):
    s = run(tiny["bundle"], source="picamera2", max_frames=30, print_every=0, handle_signals=False)
    assert s.exit_code == 0 and s.frames == 30


def test_auto_falls_back_to_cpu_when_the_edgetpu_is_missing(tiny, heldout_video, tmp_path):
    root = bundle_with_edgetpu_entry(tiny, tmp_path)
    p = devicekit.run_cmd(root, "--source", heldout_video, "--max-frames", "3", "--print-every", "0")
    assert p.returncode == 0, p.stderr
    assert "Edge TPU model not used" in p.stderr and "libedgetpu" in p.stderr and "falling back" in p.stderr
    assert "format auto: " in p.stderr and "model edgetpu" not in p.stderr  # the CPU models' trial decided


@pytest.mark.parametrize("args", [["--format", "edgetpu"], ["--edgetpu"]])
def test_asking_for_the_edgetpu_without_it_is_a_clear_error(tiny, heldout_video, tmp_path, args):
    root = bundle_with_edgetpu_entry(tiny, tmp_path)
    p = devicekit.run_cmd(root, *args, "--source", heldout_video, "--max-frames", "1")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    err = [s for s in p.stderr.splitlines() if "error:" in s]
    assert len(err) == 1 and "libedgetpu" in err[0] and "Edge TPU" in err[0]


def test_picamera2_missing_is_a_clear_error(tiny):
    try:
        import picamera2  # noqa: F401

        pytest.skip("picamera2 is installed here")
    except ImportError:
        pass
    p = devicekit.run_cmd(tiny["bundle"], "--source", "picamera2", "--max-frames", "1")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "python3-picamera2" in p.stderr and "--system-site-packages" in p.stderr
