"""MediaPipe Tasks' ImageClassifier as an outside reader of our .tflite files, in its OWN venv.

MediaPipe needs opencv-contrib-python, which cannot share a venv with our opencv-python-headless, so it
lives in ``~/.cache/edgelite/mediapipe-<version>`` (override with EDGELITE_MEDIAPIPE_VENV)::

    python scripts/mediapipe_client.py setup          # create the venv once (~3 min, ~650 MB); prints its python
    MP_PY scripts/mediapipe_client.py classify model_int8.tflite bundle/heldout.npz   # JSON on stdout

`classify` gives, per image of the npz's ``images`` (uint8 RGB, N x H x W x 3), MediaPipe's top-1
index, category name and score, and the category names MediaPipe reports for the first image.
Standard library only in `setup` (it runs under any python); `classify` imports mediapipe.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

MEDIAPIPE_VERSION = "1.2.3"


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "edgelite" / f"mediapipe-{MEDIAPIPE_VERSION}"
    return Path(os.environ.get("EDGELITE_MEDIAPIPE_VENV", default))


def setup(timeout: float = 1200.0) -> Path:
    """The venv's python, creating the venv first if needed. Raises RuntimeError (one line) on failure."""
    d = venv_dir()
    py, stamp = d / "bin" / "python", d / ".edgelite-installed"
    d.parent.mkdir(parents=True, exist_ok=True)
    with open(d.parent / f".{d.name}.lock", "w") as lock:  # two test sessions never build it at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and py.is_file():
            return py
        steps = [[sys.executable, "-m", "venv", "--clear", str(d)],
                 [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"mediapipe=={MEDIAPIPE_VERSION}"],
                 [str(py), "-c", "import mediapipe.tasks.python.vision"]]
        for cmd in steps:
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"{' '.join(cmd[:4])} timed out after {timeout:.0f} s") from None
            if r.returncode != 0:
                last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise RuntimeError(f"installing mediapipe=={MEDIAPIPE_VERSION} into {d} failed: {last}")
        stamp.write_text(MEDIAPIPE_VERSION + "\n")
    return py


def classify(model: str, npz: str) -> dict:
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import BaseOptions, vision

    images = np.load(npz)["images"]
    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model), max_results=-1)
    out: dict = {"mediapipe": getattr(mp, "__version__", "?"), "top1": [], "names": None}
    with vision.ImageClassifier.create_from_options(opts) as clf:
        for img in images:
            res = clf.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img)))
            cats = res.classifications[0].categories
            if out["names"] is None:
                out["names"] = {c.index: c.category_name for c in cats}
            best = max(cats, key=lambda c: c.score)
            out["top1"].append([best.index, best.category_name, round(float(best.score), 5)])
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["setup"]:
        try:
            print(setup())
        except RuntimeError as e:
            print(f"mediapipe_client: {e}", file=sys.stderr)
            return 1
        return 0
    if argv[:1] == ["classify"] and len(argv) == 3:
        json.dump(classify(argv[1], argv[2]), sys.stdout)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
