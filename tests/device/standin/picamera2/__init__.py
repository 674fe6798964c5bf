"""A stand-in for picamera2 (Raspberry Pi's camera library, apt-only) with the interface edgelite uses, for
tests on machines without a Pi camera: put tests/device/standin on PYTHONPATH.

`Picamera2(n)` "captures" solid-colour frames cycling through STANDIN_COLOURS (BGR), one per
`capture_request()`; when an AI Camera network was loaded (`picamera2.devices.IMX500`), each request's
metadata carries that network's output for the frame, as the real sensor's does ("CnnOutputTensor", and
"CnnKpiInfo" in microseconds). The "network" is the stand-in's own: one-hot scores of the frame's colour.
What only the real camera shows (libcamera, the ISP, the sensor's own timing) is not here.
"""

from __future__ import annotations

import os
import time

import numpy as np

#: the frame colours, in order (B, G, R): red, green, blue, yellow (tests/kit.py's LABELS); the stand-in
#: network's class i is colour i
STANDIN_COLOURS = [(40, 40, 210), (60, 190, 40), (220, 70, 40), (40, 210, 220)]
_LOADED: dict = {}  # the network the IMX500 helper "loaded into the sensor": {"path", "classes"}


class _Request:
    def __init__(self, image: np.ndarray, metadata: dict):
        self._image, self._metadata = image, metadata

    def make_array(self, name: str) -> np.ndarray:
        return self._image.copy()

    def get_metadata(self) -> dict:
        return dict(self._metadata)

    def release(self) -> None:
        pass


class Picamera2:
    def __init__(self, camera_num: int = 0):
        if os.environ.get("STANDIN_NO_CAMERA"):
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.camera_num = camera_num
        self.size = (640, 480)
        self.started = False
        self.index = 0

    @staticmethod
    def global_camera_info() -> list:
        return [{"Model": "imx500", "Num": 0}]

    def create_video_configuration(self, main=None, lores=None, **kw) -> dict:
        return {"main": main or {"size": self.size, "format": "RGB888"}, "lores": lores}

    create_preview_configuration = create_video_configuration

    def configure(self, config: dict) -> None:
        self.size = tuple(config["main"]["size"])

    def start(self, config=None, show_preview=False) -> None:
        if config is not None:
            self.configure(config)
        self.started = True

    def capture_request(self) -> _Request:
        if not self.started:
            raise RuntimeError("camera not started")
        time.sleep(1 / 60)  # a camera's frame interval, not a busy loop
        i = self.index
        self.index += 1
        colour = STANDIN_COLOURS[i % len(STANDIN_COLOURS)]
        w, h = self.size
        image = np.empty((h, w, 3), np.uint8)
        image[:] = colour
        metadata: dict = {"SensorTimestamp": i}
        if _LOADED and i >= 2:  # the real sensor needs a few frames after the network loads
            scores = np.zeros(_LOADED["classes"], np.float32)
            scores[(i % len(STANDIN_COLOURS)) % _LOADED["classes"]] = 0.9961
            metadata["CnnOutputTensor"] = scores.tolist()
            metadata["CnnKpiInfo"] = [2500 + i, 400]  # DNN and DSP runtime, microseconds
        return _Request(image, metadata)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        pass
