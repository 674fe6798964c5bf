"""`--source imx500`: the Raspberry Pi AI Camera, whose sensor (Sony IMX500) runs the classifier itself.

Hardware-only, like `picamera.py` (picamera2 from apt; the venv made with --system-site-packages). The
bundle's ``packerOut.zip`` (`edgelite convert --formats imx500`) becomes ``imx500/network.rpk`` on the Pi
through Raspberry Pi's ``imx500-package`` (`edgelite deploy` runs it); picamera2's ``IMX500`` helper loads
it into the sensor before the camera opens. Each frame's metadata then carries the network's output:
``imx500.get_outputs(metadata)[0]`` the dequantized scores, ``imx500.get_kpi_info(metadata)`` the time the
sensor took. The sensor's own ISP crops and scales the frame for the network (its inference aspect ratio
is set to the model's), so no resize runs on the CPU: the frame arrives with its scores
(`Frame.sensor_scores`) and `Pipeline.run_model` passes them on to the same results, JSON lines, preview,
MQTT and /metrics as every other runtime.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from edgelite.device.errors import RunError, SourceFailed
from edgelite.device.frames import Frame
from edgelite.device.sources.base import Source
from edgelite.device.sources.picamera import MAIN_SIZE, camera_session, import_imx500
from edgelite.manifest import IMX500_NETWORK, IMX500_PACKAGER

PACKAGE_HINT = (f"on the Pi: `sudo apt install imx500-all`, then `{IMX500_PACKAGER} -i BUNDLE/packerOut.zip "
                f"-o BUNDLE/{Path(IMX500_NETWORK).parent}` (edgelite deploy does this)")


class SensorModel:
    """The `Model` protocol for a network that runs on the IMX500: the scores come with each frame
    (`Frame.sensor_scores`, already dequantized by picamera2), so there is nothing to invoke here."""

    runtime = "imx500 (on the sensor)"
    delegate = "imx500"
    input_dtype = np.dtype(np.uint8)
    takes_raw_pixels = False

    def __init__(self, network: Path, height: int, width: int, num_classes: int):
        self.path = network
        self.input_height, self.input_width, self.num_classes = height, width, num_classes

    def input_view(self) -> None:
        return None

    def set_input(self, rgb: np.ndarray) -> None:
        raise RunError("the imx500 network runs on the sensor: it takes frames from --source imx500 only")

    def invoke(self) -> None:
        raise RunError("the imx500 network runs on the sensor: it takes frames from --source imx500 only")

    def output(self) -> np.ndarray:
        raise RunError("the imx500 network's scores come with each frame's metadata")

    scores = output

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        """The sensor's scores (picamera2 dequantized them), checked against the bundle's labels."""
        if raw.shape != (self.num_classes,):
            raise RunError(f"the sensor's network gave {raw.size} scores, the bundle has {self.num_classes} labels: "
                           f"{self.path} is not this bundle's network — re-run {IMX500_PACKAGER} on its packerOut.zip")
        return np.asarray(raw, np.float32)

    def classify(self, rgb: np.ndarray) -> np.ndarray:
        self.set_input(rgb)
        return self.output()


def network_file(bundle_root: str | Path) -> Path:
    """Where the network the sensor loads lives in a bundle on the Pi (made there from packerOut.zip)."""
    return Path(bundle_root) / IMX500_NETWORK


def sensor_model(bundle) -> tuple[SensorModel, object]:
    """(SensorModel, the bundle's imx500 entry) once packerOut.zip matches its sha256 and network.rpk is there."""
    from edgelite.bundle import BundleError

    try:
        entry = bundle.select("imx500")
    except BundleError as e:
        raise RunError(f"--source imx500 runs the bundle's imx500 model: {e}; convert with "
                       "`edgelite convert RUN --formats imx500`") from None
    bundle.verified_path(entry)
    network = network_file(bundle.root)
    if not network.is_file():
        raise RunError(f"{network} is missing: the sensor loads network.rpk, made from packerOut.zip {PACKAGE_HINT}")
    return SensorModel(network, bundle.input.height, bundle.input.width, len(bundle.labels)), entry


class IMX500Source(Source):
    """Frames of the AI Camera's main stream (BGR, for the preview), each with the sensor's scores for it."""

    live = True
    kind = "imx500"

    def __init__(self, network: str | Path, *, model_size: tuple[int, int], main_size: tuple[int, int] = MAIN_SIZE):
        super().__init__("imx500", capacity=1, drop=True)
        self.network = Path(network)
        self.model_size = model_size  # (height, width)
        self.main_size = main_size
        self._classes = None

    def _prepare(self) -> None:
        self._classes = import_imx500()  # a missing package is a user error, not a reconnect
        self.prepare = None  # the sensor's ISP crops and scales for the network: no resize on the CPU

    def _run(self, put, stop: threading.Event) -> None:
        picamera2_cls, imx500_cls = self._classes
        try:
            imx = imx500_cls(str(self.network))  # loads the network into the sensor (before the camera opens)
            cam = picamera2_cls(imx.camera_num)
        except Exception as e:  # no AI Camera attached, camera busy, a network file the sensor refuses
            raise SourceFailed(f"imx500: cannot open the AI Camera with {self.network.name}: {e}") from None
        with camera_session(cam):
            cam.configure(cam.create_video_configuration(main={"size": self.main_size, "format": "RGB888"}))
            height, width = self.model_size
            imx.set_inference_aspect_ratio((width, height))
            cam.start()
            index = 0
            while not stop.is_set():
                request = cam.capture_request()
                try:
                    metadata = request.get_metadata()
                    image = request.make_array("main")
                finally:
                    request.release()
                outputs = imx.get_outputs(metadata)
                if outputs is None:  # the sensor has not run the network on this frame (still loading)
                    continue
                kpi = imx.get_kpi_info(metadata)
                frame = Frame(image=image, index=index, timestamp=time.time(),
                              sensor_scores=np.asarray(outputs[0], np.float32).reshape(-1),
                              sensor_ms=float(kpi[0]) if kpi else 0.0)
                if not put(frame):
                    return
                index += 1
