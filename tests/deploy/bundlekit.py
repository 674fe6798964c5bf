"""Real test inputs for the deploy tests: a tiny int8 bundle (built with TensorFlow) and a short MJPG video.

Run as a script in a subprocess (`python tests/deploy/bundlekit.py OUT`) so TensorFlow never loads into
the pytest process. The classifier tells four colours apart (a conv net with a Rescaling layer inside,
int8 with uint8 input/output); the video shows those colours, so the device's lines mean something.
Small on purpose: under qemu (the emulated Pi) inference is ~40x slower than native.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a script: make the checkout importable for `tests.kit`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests import kit  # noqa: E402

LABELS = kit.LABELS
COLOURS_RGB = [kit.COLOURS_RGB[c] for c in LABELS]
SIZE = kit.SIZE


def colour_images(n: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """n RGB uint8 images: a coloured square on a noisy grey background; the colour is the class."""
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, len(LABELS), n)
    xs = np.empty((n, size, size, 3), np.uint8)
    for i, y in enumerate(ys):
        img = rng.integers(70, 180, (1, 1, 1)) + rng.integers(-20, 21, (size, size, 3))
        c = np.array(COLOURS_RGB[y]) + rng.integers(-25, 26, 3)
        a, b = sorted(rng.integers(2, size - 2, 2))
        img[a:max(b, a + size // 3), a:max(b, a + size // 3)] = c
        xs[i] = np.clip(img, 0, 255)
    return xs, ys


def build_bundle(out: Path, seed: int = 0) -> Path:
    """Train for a few seconds, convert to int8 (uint8 io), write model_int8.tflite + the manifest."""
    x, y = colour_images(600, seed + 1)
    model = kit.train_tiny_cnn(x, y, classes=len(LABELS), seed=seed, lr=5e-3, epochs=5)
    xt, yt = colour_images(100, seed + 2)
    top1 = kit.keras_top1(model, xt, yt)

    def representative():
        for i in range(50):
            yield [x[i:i + 1].astype(np.float32)]

    out.mkdir(parents=True, exist_ok=True)
    (out / "model_int8.tflite").write_bytes(kit.int8_tflite(model, representative))
    # heldout.npz: `edgelite bench` scores the same 100 images on the device (the VM's top-1 vs this machine's)
    return kit.write_bundle(out, {"int8": out / "model_int8.tflite"}, labels=LABELS, top1=top1,
                            info={"made_by": "tests/deploy/bundlekit.py", "keras_top1": top1}, heldout=(xt, yt))


def write_video(path: Path, frames: int = 40, fps: float = 10.0) -> Path:
    """An MJPG .avi cycling through the four colours (10 frames each), 64x48."""

    def colour_frames():
        rng = np.random.default_rng(3)
        for i in range(frames):
            r, g, b = COLOURS_RGB[(i // 10) % len(LABELS)]
            img = np.full((48, 64, 3), 120, np.int16) + rng.integers(-15, 16, (48, 64, 3))
            img[8:40, 16:48] = (b, g, r)  # BGR
            yield np.clip(img, 0, 255).astype(np.uint8)

    return kit.write_mjpg(path, colour_frames(), (64, 48), fps)


if __name__ == "__main__":
    dest = Path(sys.argv[1])
    build_bundle(dest)
    print(json.dumps({"bundle": str(dest)}))


def another_version(src: Path, dest: Path, version) -> Path:
    """A copy of the bundle at `src` under another `version`: the same model, another manifest, so another
    bundle id (a real update to a device serving `src`)."""
    import shutil

    from edgelite.bundle import Bundle

    shutil.copytree(src, dest)
    b = Bundle.load(dest)
    b.info["version"] = version
    b.save()
    return dest
