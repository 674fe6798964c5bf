"""Write images as a video file: the `--source heldout` video, demos and tests (MJPG .avi plays with
every OpenCV build, headless included)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgelite.device.errors import RunError


def write_video(path: str | os.PathLike, images_rgb: np.ndarray, *, scale: int = 2, fps: float = 30.0,
                quality: int = 95, repeat: int = 1) -> Path:
    """Frame i shows images_rgb[i // repeat] (N x H x W x 3 uint8 RGB) enlarged `scale` times (nearest).

    At an integer scale the loop's bilinear resize recovers the image exactly, so only JPEG compression
    separates a frame from the image it was made from.
    """
    path = Path(path)
    images_rgb = np.asarray(images_rgb)
    if images_rgb.ndim != 4 or images_rgb.shape[-1] != 3 or images_rgb.dtype != np.uint8:
        raise RunError(f"expected N x H x W x 3 uint8 images, got {images_rgb.shape} {images_rgb.dtype}")
    h, w = images_rgb.shape[1] * scale, images_rgb.shape[2] * scale
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise RunError(f"OpenCV cannot write {path} (MJPG); is the folder writable?")
    try:
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
        for img in images_rgb:
            frame = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            if scale != 1:
                frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_NEAREST)
            for _ in range(repeat):
                writer.write(frame)
    finally:
        writer.release()
    return path
