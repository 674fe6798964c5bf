"""Real test inputs for the deploy tests: a tiny int8 bundle (built with TensorFlow) and a short MJPG video.

Run as a script in a subprocess (`python tests/deploy/bundlekit.py OUT`) so TensorFlow never loads into
the pytest process. The classifier tells four colours apart (a conv net with a Rescaling layer inside,
int8 with uint8 input/output); the video shows those colours, so the device's lines mean something.
Small on purpose: under qemu (the emulated Pi) inference is ~40x slower than native.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

LABELS = ["red", "green", "blue", "yellow"]
COLOURS_RGB = [(210, 40, 40), (40, 190, 60), (40, 70, 220), (220, 210, 40)]
SIZE = 32


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
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras as keras

    from edgelite.bundle import Bundle, InputSpec, ModelEntry

    tf.random.set_seed(seed)
    x, y = colour_images(600, seed + 1)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    h = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inp)
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(h)
    h = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(len(LABELS), activation="softmax")(h)
    model = keras.Model(inp, h)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x.astype(np.float32), y, epochs=5, batch_size=32, verbose=0)
    xt, yt = colour_images(100, seed + 2)
    top1 = float((model.predict(xt.astype(np.float32), verbose=0).argmax(1) == yt).mean())

    def representative():
        for i in range(50):
            yield [x[i:i + 1].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_int8.tflite").write_bytes(conv.convert())
    b = Bundle(root=out, labels=LABELS, input=InputSpec(height=SIZE, width=SIZE), models=[],
               info={"made_by": "tests/deploy/bundlekit.py", "keras_top1": top1})
    b.add_file(ModelEntry(name="int8", path="model_int8.tflite", format="tflite", precision="int8",
                          metrics={"top1": top1}))
    b.save()
    return out


def write_video(path: Path, frames: int = 40, fps: float = 10.0) -> Path:
    """An MJPG .avi cycling through the four colours (10 frames each), 64x48."""
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    if not w.isOpened():
        raise RuntimeError("OpenCV cannot write MJPG video here")
    rng = np.random.default_rng(3)
    for i in range(frames):
        r, g, b = COLOURS_RGB[(i // 10) % len(LABELS)]
        img = np.full((48, 64, 3), 120, np.int16) + rng.integers(-15, 16, (48, 64, 3))
        img[8:40, 16:48] = (b, g, r)  # BGR
        w.write(np.clip(img, 0, 255).astype(np.uint8))
    w.release()
    return path


if __name__ == "__main__":
    dest = Path(sys.argv[1])
    build_bundle(dest)
    print(json.dumps({"bundle": str(dest)}))
