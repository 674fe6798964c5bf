"""Stand-in for `picamera2.devices` (see `picamera2` here): the AI Camera's IMX500 helper."""

from __future__ import annotations

import os

import numpy as np

import picamera2


class IMX500:
    """Loads a network file "into the sensor"; reads the output tensor and KPIs from a frame's metadata."""

    def __init__(self, network_file: str):
        with open(network_file, "rb") as f:  # the real helper refuses a missing file the same way
            head = f.read(64)
        self.network_file = network_file
        self.camera_num = 0
        self.aspect_ratio = None
        classes = int(os.environ.get("STANDIN_IMX500_CLASSES", "4"))
        picamera2._LOADED.update(path=network_file, classes=classes, head=head)

    def set_inference_aspect_ratio(self, aspect_ratio) -> None:
        self.aspect_ratio = tuple(aspect_ratio)

    def get_outputs(self, metadata: dict, add_batch: bool = False):
        out = metadata.get("CnnOutputTensor")
        return None if out is None else [np.asarray(out, np.float32)]

    def get_kpi_info(self, metadata: dict):
        kpi = metadata.get("CnnKpiInfo")
        return None if kpi is None else (kpi[0] / 1000, kpi[1] / 1000)
