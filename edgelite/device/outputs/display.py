"""`--display`: an OpenCV window with the top-k labels drawn over the frame (the overlay the preview page
streams too)."""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from edgelite.device.errors import RunError
from edgelite.device.frames import Frame
from edgelite.device.outputs.base import Output
from edgelite.device.pipeline import Result


def draw_overlay(image: np.ndarray, result: Result | None, *, extra: str | None = None) -> np.ndarray:
    """A copy of `image` (BGR) with the top-k labels, FPS and inference time on a dark panel, top left."""
    out = image.copy() if image.ndim == 3 and image.shape[2] == 3 else cv2.cvtColor(
        image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_BGRA2BGR)
    if result is None:
        return out
    lines = [f"{p.label} {p.score:.2f}" for p in result.top_k] or ["(below threshold)"]
    lines.append(f"{result.fps:.1f} fps  inf {result.timings_ms['inference']:.1f} ms")
    if extra:
        lines.append(extra)
    scale = max(0.4, min(1.0, out.shape[0] / 480))
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1 if scale < 0.7 else 2
    sizes = [cv2.getTextSize(t, font, scale, thick)[0] for t in lines]
    step = max(h for _, h in sizes) + int(10 * scale) + 2
    width = min(out.shape[1], max(w for w, _ in sizes) + 16)
    height = min(out.shape[0], step * len(lines) + 8)
    panel = out[:height, :width]
    panel[...] = (panel * 0.35).astype(np.uint8)  # darken behind the text, keep the frame visible
    for i, text in enumerate(lines):
        colour = (90, 255, 90) if i == 0 and result.label is not None else (255, 255, 255)
        cv2.putText(out, text, (8, 4 + step * (i + 1) - int(5 * scale)), font, scale, colour, thick, cv2.LINE_AA)
    return out


def gui_available() -> str | None:
    """None when OpenCV can open a window here, else the reason it cannot."""
    info = cv2.getBuildInformation()
    for line in info.splitlines():
        if line.strip().startswith("GUI:") and line.split(":", 1)[1].strip().upper() == "NONE":
            return ("this OpenCV is the headless build (no GUI); `pip install opencv-python` in place of "
                    "opencv-python-headless for --display, or watch the preview page with --http")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set); run on the desktop or watch the preview page with --http"
    return None


class DisplayOutput(Output):
    """An OpenCV window with the overlay; `q` or Esc stops the loop (through `on_quit`)."""

    WINDOW = "edgelite"

    def __init__(self, on_quit=None):
        reason = gui_available()
        if reason:
            raise RunError(f"--display: {reason}")
        try:
            cv2.namedWindow(self.WINDOW, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise RunError(f"--display: OpenCV cannot open a window ({str(e).strip().splitlines()[-1]})") from None
        self.on_quit = on_quit

    def write(self, result: Result, frame: Frame) -> None:
        cv2.imshow(self.WINDOW, draw_overlay(frame.image, result))
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) and self.on_quit:
            self.on_quit()

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.WINDOW)
        except cv2.error:
            pass
