"""Tiny real models for the convert tests' error paths (imported by conftest and tests; needs TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_LABELS = ["blue", "green", "red", "yellow"]  # sorted: the class order of an image folder
TINY_RGB = {"red": (210, 40, 40), "green": (40, 190, 60), "blue": (40, 70, 220), "yellow": (220, 210, 40)}
TINY_SIZE = 32


def tiny_images(root: Path, per_class: int = 20, seed: int = 0) -> Path:
    import cv2

    rng = np.random.default_rng(seed)
    for name in TINY_LABELS:
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            colour = np.array(TINY_RGB[name], np.int16) + rng.integers(-25, 26, 3, dtype=np.int16)
            img = np.clip(colour + rng.integers(-20, 21, (40, 40, 3), dtype=np.int16), 0, 255).astype(np.uint8)
            cv2.imwrite(str(d / f"{name}_{i:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return root


def tiny_model(scale: float = 10.0, extra_layer=None):
    """Mean colour -> class, by hand: Rescaling -> GlobalAveragePooling2D -> Dense(softmax)."""
    import tf_keras as keras

    inp = keras.Input((TINY_SIZE, TINY_SIZE, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(inp)
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    if extra_layer is not None:
        x = extra_layer(x)
    out = keras.layers.Dense(len(TINY_LABELS), activation="softmax", name="head_dense")(x)
    model = keras.Model(inp, out)
    model.get_layer("conv").set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3)])
    # rows: mean R, G, B in 0..1; columns: blue, green, red, yellow
    w = np.array([[-1, -1, 1, 1], [-1, 1, -1, 1], [1, -1, -1, -2]], np.float32)
    b = np.array([0, 0, 0, -1], np.float32)
    if extra_layer is None:
        model.get_layer("head_dense").set_weights([w * scale, b * scale])
    return model


