"""The Raspberry Pi camera through picamera2 (libcamera). Hardware-only: tests carry the `picamera` marker.

picamera2 is not on PyPI for this purpose: on Raspberry Pi OS it comes from apt
(`sudo apt install python3-picamera2`), and the venv must be made with `--system-site-packages` to
see it. It is imported only when `--source picamera2` is used.

Two streams, as in picamera2's own TFLite example: the small "lores" stream sized for the model is
what gets classified (no resize on the CPU), the "main" stream is what the preview and display show.
"""

from __future__ import annotations

import contextlib
import threading
import time

import cv2

from edgelite.device.errors import SourceError, SourceFailed
from edgelite.device.frames import Frame
from edgelite.device.sources.base import Source

MAIN_SIZE = (640, 480)  # (width, height) of the preview stream

INSTALL_HINT = ("picamera2 is not installed: on Raspberry Pi OS run `sudo apt install python3-picamera2` and "
                "make the venv with `python3 -m venv --system-site-packages`; OpenCV cannot open libcamera cameras")


def import_picamera2():
    """The Picamera2 class, or SourceError with the install hint."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise SourceError(INSTALL_HINT) from None
    return Picamera2


def import_imx500():
    """(Picamera2, IMX500): picamera2 with its AI Camera helper (`sources/imx500.py`), or SourceError."""
    Picamera2 = import_picamera2()
    try:
        from picamera2.devices import IMX500
    except ImportError:
        raise SourceError("this picamera2 has no IMX500 helper (picamera2.devices): `sudo apt install --upgrade "
                          "python3-picamera2 imx500-all` on Raspberry Pi OS") from None
    return Picamera2, IMX500


@contextlib.contextmanager
def camera_session(cam):
    """`cam` (a Picamera2) for the `with` block; stopped, then closed, on the way out whatever happens."""
    try:
        yield cam
    finally:
        try:
            cam.stop()
        finally:
            cam.close()


def _even(n: int) -> int:
    return max(2, (int(n) + 1) // 2 * 2)


class PicameraSource(Source):
    """Frames from picamera2: `main` (BGR, for display) plus `lores` (BGR, sized for the model)."""

    live = True
    kind = "picamera2"

    def __init__(self, *, model_size: tuple[int, int] | None = None, main_size: tuple[int, int] = MAIN_SIZE,
                 camera_num: int = 0):
        super().__init__(f"picamera2:{camera_num}" if camera_num else "picamera2", capacity=1, drop=True)
        self.model_size = model_size  # (height, width)
        self.main_size = main_size
        self.camera_num = camera_num
        self._picamera2_cls = None

    def _prepare(self) -> None:
        self._picamera2_cls = import_picamera2()  # a missing package is a user error, not a reconnect

    def _configure(self, cam) -> str | None:
        """Configure the camera; returns how the lores stream is laid out ("bgr", "yuv420" or None)."""
        # picamera2's "RGB888" is laid out B, G, R in memory: exactly OpenCV's BGR.
        main = {"size": self.main_size, "format": "RGB888"}
        if not self.model_size:
            cam.configure(cam.create_video_configuration(main=main))
            return None
        lores_size = (_even(self.model_size[1]), _even(self.model_size[0]))
        try:  # Pi 5 (PiSP) gives an RGB lores stream
            cam.configure(cam.create_video_configuration(main=main, lores={"size": lores_size, "format": "RGB888"}))
            return "bgr"
        except Exception:  # Pi 4 and older: lores must be YUV420
            cam.configure(cam.create_video_configuration(main=main, lores={"size": lores_size, "format": "YUV420"}))
            return "yuv420"

    def _run(self, put, stop: threading.Event) -> None:
        try:
            cam = self._picamera2_cls(self.camera_num)
        except Exception as e:  # no camera attached, camera busy
            raise SourceFailed(f"picamera2: cannot open camera {self.camera_num}: {e}") from None
        with camera_session(cam):
            lores = self._configure(cam)
            cam.start()
            index = 0
            while not stop.is_set():
                request = cam.capture_request()
                try:
                    image = request.make_array("main")
                    small = request.make_array("lores") if lores else None
                finally:
                    request.release()
                if small is not None and lores == "yuv420":
                    small = cv2.cvtColor(small, cv2.COLOR_YUV2BGR_I420)
                if not put(Frame(image=image, index=index, timestamp=time.time(), model_image=small)):
                    return
                index += 1
