"""Frame -> model input. The ONE preprocessing path, used by `run`, `bench` and `convert`'s validator.

Rescaling/normalisation lives inside the model; here we only centre-crop, resize with the
interpolation the model was trained with, and turn OpenCV's BGR into RGB.
"""

from __future__ import annotations

import cv2
import numpy as np

INTERPOLATION = {
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "area": cv2.INTER_AREA,
    "bicubic": cv2.INTER_CUBIC,
}


def center_crop(img: np.ndarray, fraction: float) -> np.ndarray:
    """Keep the central square-ish region whose shorter side is `fraction` of the image's shorter side."""
    if fraction >= 1.0:
        return img
    h, w = img.shape[:2]
    side = max(1, int(round(min(h, w) * fraction)))
    top, left = (h - side) // 2, (w - side) // 2
    return img[top : top + side, left : left + side]


def resize(img: np.ndarray, height: int, width: int, interpolation: str = "bilinear") -> np.ndarray:
    """Resize an HxWx3 uint8 image (channel order untouched)."""
    if img.shape[0] == height and img.shape[1] == width:
        return img
    return cv2.resize(img, (width, height), interpolation=INTERPOLATION[interpolation])


def prepare_rgb(rgb: np.ndarray, spec, out: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 image of any size -> RGB uint8 (spec.height, spec.width, 3)."""
    img = resize(center_crop(rgb, getattr(spec, "crop", 1.0)), spec.height, spec.width, spec.resize)
    if out is not None:
        out[...] = img
        return out
    return np.ascontiguousarray(img)


def prepare_bgr(frame: np.ndarray, spec, out: np.ndarray | None = None) -> np.ndarray:
    """A camera/OpenCV BGR frame -> RGB uint8 model input. Grayscale and BGRA frames are accepted."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    img = resize(center_crop(frame, getattr(spec, "crop", 1.0)), spec.height, spec.width, spec.resize)
    if out is not None:
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=out)
        return out
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
