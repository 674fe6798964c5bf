"""Building blocks the tests share for their real inputs: tiny Keras models exported to TFLite (fp32, full
int8 with uint8 in/out) and ONNX, bundles written with `edgelite.bundle`, MJPG videos and image frames.

TensorFlow, OpenCV and edgelite are imported inside the functions, so importing this module is cheap (the
deploy tests import it in the pytest process and build with it in a subprocess).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

COLOURS_RGB = {"red": (210, 40, 40), "green": (40, 190, 60), "blue": (40, 70, 220), "yellow": (220, 210, 40)}
LABELS = list(COLOURS_RGB)  # red, green, blue, yellow
SIZE = 32  # model input (height = width)


# ------------------------------------------------------------------------------------------ models
def tf_keras():
    """(tensorflow, tf_keras), imported with TF_USE_LEGACY_KERAS set first."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras as keras

    return tf, keras


def train_tiny_cnn(x: np.ndarray, y: np.ndarray, *, classes: int, seed: int, lr: float, epochs: int,
                   size: int = SIZE):
    """A small conv net with a Rescaling layer inside (raw 0..255 pixels in), trained on (x, y)."""
    tf, keras = tf_keras()
    tf.random.set_seed(seed)
    inp = keras.Input((size, size, 3), name="image")  # raw 0..255 pixels
    h = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inp)
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(h)
    h = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(classes, activation="softmax")(h)
    model = keras.Model(inp, h)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x.astype(np.float32), y, epochs=epochs, batch_size=32, verbose=0)
    return model


def keras_top1(model, x: np.ndarray, y: np.ndarray) -> float:
    """The Keras model's top-1 accuracy on uint8 images x with labels y."""
    return float((model.predict(x.astype(np.float32), verbose=0).argmax(1) == y).mean())


def fp32_tflite(model) -> bytes:
    tf, _ = tf_keras()
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def int8_tflite(model, representative: Callable[[], Iterator[list]]) -> bytes:
    """Full-integer TFLite (int8 kernels, uint8 input and output) calibrated on `representative`."""
    tf, _ = tf_keras()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    return conv.convert()


def export_onnx(model, path: Path, *, size: int = SIZE) -> Path:
    """The Keras model as ONNX (opset 17, float32 input "image" of 1 x size x size x 3)."""
    tf, _ = tf_keras()
    import tf2onnx

    spec = (tf.TensorSpec((1, size, size, 3), tf.float32, name="image"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(path))
    return path


# ------------------------------------------------------------------------------------------ bundles
def write_bundle(out: Path, files: dict[str, Path], *, labels: list[str], info: dict, top1: float | None,
                 heldout: tuple[np.ndarray, np.ndarray] | None = None, size: int = SIZE) -> Path:
    """A real bundle in `out`: one model entry per file (name "onnx" -> onnx/fp32, else tflite/<name>),
    metrics {"top1": top1} (none when top1 is None), and heldout.npz when `heldout` = (images, labels).

    Files outside `out` are copied in first.
    """
    from edgelite.bundle import Bundle, InputSpec, ModelEntry, sha256_file

    out.mkdir(parents=True, exist_ok=True)
    bundle = Bundle(root=out, labels=list(labels), input=InputSpec(height=size, width=size, resize="bilinear"),
                    models=[], info=info)
    for name, path in files.items():
        if path.resolve().parent != out.resolve():
            shutil.copy(path, out / path.name)
        fmt, precision = ("onnx", "fp32") if name == "onnx" else ("tflite", name)
        bundle.add_file(ModelEntry(name=name, path=path.name, format=fmt, precision=precision,
                                   metrics={"top1": top1} if top1 is not None else {}))
    if heldout is not None:
        x, y = heldout
        np.savez(out / "heldout.npz", images=x, labels=y)
        bundle.info["heldout"] = {"path": "heldout.npz", "sha256": sha256_file(out / "heldout.npz")}
    bundle.save()
    return out


# ------------------------------------------------------------------------------------------ media
def upscaled_bgr(img_rgb: np.ndarray, scale: int) -> np.ndarray:
    """An RGB image as OpenCV's BGR, enlarged `scale` times (nearest neighbour)."""
    import cv2

    return cv2.resize(cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR), None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_NEAREST)


def write_mjpg(path: Path, frames_bgr: Iterable[np.ndarray], size_wh: tuple[int, int], fps: float) -> Path:
    """An MJPG .avi of the BGR frames (each size_wh = (width, height))."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size_wh)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPG video to {path}")
    try:
        for frame in frames_bgr:
            writer.write(frame)
    finally:
        writer.release()
    return path
