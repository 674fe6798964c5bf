"""The adapted run goes through the rest of the pipeline unchanged: convert to int8, `edgelite run` on the camera."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgelite.convert.errors import ConvertError

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_adapted_run_converts_to_int8_and_runs_on_the_shifted_camera(domain, adapted, tmp_path):
    from edgelite.convert import convert

    a = adapted("bn")
    b = convert(a.path, tmp_path / "bundle", formats="int8", calibration=64, calibration_data=domain.unlabeled,
                verbose=False)
    entry = next(m for m in b.models if m.name == "int8")
    assert entry.status == "ok", entry.error
    assert b.info["settings"]["calibration_data"] == str(domain.unlabeled)
    assert b.info["settings"]["calibration_images"] == 64

    # the shifted evaluation images as the device's camera frames, in a known order
    frames, truth = tmp_path / "frames", []
    frames.mkdir()
    for f in sorted(domain.eval.rglob("*.png")):
        shutil.copy(f, frames / f"{len(truth):05d}.png")
        truth.append(domain.labels.index(f.parent.name))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "results.jsonl"
    p = subprocess.run([sys.executable, "-m", "edgelite", "run", str(tmp_path / "bundle"), "--source", str(frames),
                        "--format", "int8", "--json", str(out), "--print-every", "0"], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr
    ids = np.array([json.loads(s)["top_k"][0]["id"] for s in out.read_text().splitlines()])
    assert len(ids) == len(truth)
    loop_top1 = float((ids == np.array(truth)).mean())
    before, after = a.report["before"]["eval"]["top1"], a.report["after"]["eval"]["top1"]
    print(f"shifted camera: source float {before:.3f}, adapted float {after:.3f}, adapted int8 in the loop {loop_top1:.3f}")
    assert loop_top1 >= after - 0.05, "int8 lost more than 5 points on the target camera"
    assert loop_top1 >= before + 0.08


def test_calibration_data_errors(domain, tmp_path):
    from edgelite.convert import convert

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvertError, match="--calibration-data .* holds no images"):
        convert(domain.run, tmp_path / "b1", formats="int8", calibration_data=tmp_path / "empty", verbose=False)
    with pytest.raises(ConvertError, match="--calibration-data is for int8 formats"):
        convert(domain.run, tmp_path / "b2", formats="fp32", calibration_data=domain.unlabeled, verbose=False)
