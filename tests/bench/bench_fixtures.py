"""Models and bundles for the bench tests: real TFLite (fp32, int8 with uint8 io) and ONNX files built
with TensorFlow, whose answers are known in advance.

The classifier is hand-wired rather than trained: identity convolutions carry each colour channel
through a few layers (real work for the runtime), global average pooling and a scaled identity Dense
pick the dominant channel. On images whose dominant channel is unmistakable it is exact, so a held-out
split in which a known fraction of labels is deliberately wrong has a known top-1 (ACCURACY) for every
format — the accuracy column is checked against the labels, not against another run of the same code.

Imported only by tests (it imports TensorFlow); `edgelite/device` never sees it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests import kit

LABELS = ["red", "green", "blue"]
SIZE = kit.SIZE
N_HELDOUT = 40
N_WRONG = 10  # held-out labels deliberately shifted to a wrong class
ACCURACY = (N_HELDOUT - N_WRONG) / N_HELDOUT  # 0.75
COPIES = 4  # each channel is carried in COPIES feature maps


def colour_images(n: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """n RGB uint8 images whose dominant channel (mean >= 150 vs <= 90) is the class; noise and blobs vary."""
    import cv2

    rng = np.random.default_rng(seed)
    ys = np.arange(n) % len(LABELS)
    rng.shuffle(ys)
    xs = np.empty((n, size, size, 3), np.uint8)
    for i, y in enumerate(ys):
        base = rng.integers(20, 70, 3)
        base[y] = rng.integers(170, 230)
        img = np.clip(base[None, None, :] + rng.integers(-15, 16, (size, size, 3)), 0, 255).astype(np.uint8)
        c = (int(rng.integers(8, size - 8)), int(rng.integers(8, size - 8)))
        blob = tuple(int(v) for v in np.clip(base + rng.integers(-20, 21, 3), 0, 255))
        cv2.circle(img, c, int(rng.integers(3, 7)), blob, -1)
        xs[i] = img
    return xs, ys.astype(np.int64)


def _keras_model():
    _, keras = kit.tf_keras()

    k = len(LABELS) * COPIES
    inp = keras.Input((SIZE, SIZE, 3), name="image")  # raw 0..255 pixels
    x = keras.layers.Rescaling(1.0 / 255.0)(inp)
    widen = np.zeros((1, 1, 3, k), np.float32)
    for j in range(k):
        widen[0, 0, j % 3, j] = 1.0
    x = keras.layers.Conv2D(k, 1, use_bias=False, weights=[widen])(x)
    ident = np.zeros((3, 3, k, k), np.float32)
    for j in range(k):
        ident[1, 1, j, j] = 1.0
    for _ in range(3):  # identity 3x3 convolutions: real work for the runtime, same channel means
        x = keras.layers.Conv2D(k, 3, padding="same", activation="relu", weights=[ident, np.zeros(k, np.float32)])(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = np.zeros((k, 3), np.float32)
    for j in range(k):
        dense[j, j % 3] = 20.0 / COPIES
    x = keras.layers.Dense(3, activation="softmax", weights=[dense, np.zeros(3, np.float32)])(x)
    return keras.Model(inp, x)


def build_models(out: Path) -> dict:
    """Write model_fp32.tflite, model_int8.tflite (uint8 in/out) and model.onnx into `out`.

    Returns {"files": {name: Path}, "model": keras model, "calibration": images}.
    """
    out.mkdir(parents=True, exist_ok=True)
    model = _keras_model()
    calib, _ = colour_images(60, seed=1)
    files: dict[str, Path] = {}
    files["fp32"] = out / "model_fp32.tflite"
    files["fp32"].write_bytes(kit.fp32_tflite(model))

    def representative():
        for img in calib:
            yield [img[None].astype(np.float32)]

    files["int8"] = out / "model_int8.tflite"
    files["int8"].write_bytes(kit.int8_tflite(model, representative))
    files["onnx"] = kit.export_onnx(model, out / "model.onnx")
    return {"files": files, "model": model, "calibration": calib}


def heldout_split() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels with N_WRONG of them shifted to a wrong class, true labels)."""
    x, y_true = colour_images(N_HELDOUT, seed=2)
    y = y_true.copy()
    y[:N_WRONG] = (y[:N_WRONG] + 1) % len(LABELS)
    return x, y, y_true


def write_bundle(out: Path, files: dict[str, Path], *, top1: float | None = ACCURACY) -> Path:
    """A real bundle (manifest with sha256, labels.txt, heldout.npz) holding copies of `files`."""
    x, y, _ = heldout_split()
    return kit.write_bundle(out, files, labels=LABELS, top1=top1, heldout=(x, y),
                            info={"run": "tests/bench", "backbone": "identity-cnn"})


def write_class_folders(root: Path, images: np.ndarray, labels: np.ndarray, *, scale: int = 2) -> Path:
    """root/<label>/<i>.png (BGR on disk, upscaled) — the `--data DIR` layout."""
    import cv2

    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        d = root / LABELS[int(y)]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{i:04d}.png"), kit.upscaled_bgr(img, scale))
    return root


def write_video(path: Path, images: np.ndarray, *, scale: int = 2, fps: float = 30.0) -> Path:
    """An MJPG .avi of the images (RGB), upscaled."""
    h, w = images.shape[1] * scale, images.shape[2] * scale
    return kit.write_mjpg(path, (kit.upscaled_bgr(img, scale) for img in images), (w, h), fps)
