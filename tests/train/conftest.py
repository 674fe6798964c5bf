"""Train-stage fixtures: a small generated photo folder and one fine-tuned run per session."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

SHAPES = ("circle", "square", "triangle")


def draw_shape(kind: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A BGR image of one coloured shape on a noisy background; class = shape (colour is random)."""
    img = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (5, 5), 0)
    colour = tuple(int(c) for c in rng.integers(140, 256, 3))
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
    if kind == "circle":
        cv2.circle(img, (cx, cy), r, colour, -1)
    elif kind == "square":
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    else:
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [pts], colour)
    return img


def make_shapes_dataset(root: Path, per_class: int = 30, seed: int = 0, nested: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    for kind in SHAPES:
        for i in range(per_class):
            sub = root / kind / ("batch2" if nested and i % 3 == 0 else "")  # recursive search
            sub.mkdir(parents=True, exist_ok=True)
            ext = ".png" if i % 2 else ".jpg"
            cv2.imwrite(str(sub / f"{kind}_{i:03d}{ext}"), draw_shape(kind, rng))
    return root


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=30)


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory) -> Path:
    """Keep the converted EfficientNet-Lite0 weights in the user's cache (converted once, reused)."""
    return Path(os.environ.get("EDGELITE_CACHE_DIR", Path.home() / ".cache" / "edgelite"))


@pytest.fixture(scope="session")
def trained_run(shapes_dir, tmp_path_factory):
    """EfficientNet-Lite0 from ImageNet weights, fine-tuned briefly on the shapes at 64 px."""
    from edgelite.train import train

    out = tmp_path_factory.mktemp("runs") / "shapes"
    return train(shapes_dir, out, backbone="efficientnet_lite0", image_size=64, epochs=3, fine_tune_epochs=1,
                 batch_size=16, seed=0, verbose=0)
