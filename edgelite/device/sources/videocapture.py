"""A camera index, /dev/video device, network URL (live) or video file, through OpenCV's `VideoCapture`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edgelite.device.errors import SourceError, SourceFailed
from edgelite.device.frames import Frame
from edgelite.device.sources.base import Source
from edgelite.device.sources.diagnose import camera_cause, stream_cause
from edgelite.device.sources.rtsp import redact_url
from edgelite.suggest import did_you_mean


class VideoSource(Source):
    """Camera index, /dev/video device, network URL (live) or video file, through cv2.VideoCapture."""

    def __init__(self, spec: str | int, *, live: bool, open_timeout: float = 10.0, read_timeout: float = 5.0,
                 loop: bool = False, realtime: bool = False, readahead: int = 16):
        self.spec = spec
        self.live = live
        self.kind = "camera" if isinstance(spec, int) or str(spec).startswith("/dev/") else (
            "stream" if live else "file")
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.loop, self.realtime = loop, realtime
        drop = live or realtime
        super().__init__(redact_url(str(spec)), capacity=1 if drop else readahead, drop=drop)  # name: no password
        self.fps = 0.0
        self._cap = None
        if self.kind == "camera":  # OpenCV's V4L2 read gives up after its own 10 s select() timeout
            self.reopen_wait = 12.0

    def _open_capture(self):
        spec = self.spec if isinstance(self.spec, int) else str(self.spec)
        if self.kind == "camera":
            # the timeouts are for streams: OpenCV's V4L2 backend refuses them, and a camera index opened
            # with them fails outright (found on the Pi VM's vivid camera, scripts/pi-vm.sh)
            cap = cv2.VideoCapture(spec, cv2.CAP_ANY)
        else:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout * 1000)]
            cap = cv2.VideoCapture(spec, cv2.CAP_ANY, params)
            if self.kind == "file" and cap.isOpened() and _small(cap):
                # FFmpeg decodes on one thread per core by default; for frames this small the threads'
                # hand-offs cost more than they save and take CPU from inference (a 128x128 clip:
                # 54 against 77 us a frame, and loop/bare at 2 inference threads 0.69 -> 0.76)
                cap.release()
                cap = cv2.VideoCapture(spec, cv2.CAP_ANY, [*params, cv2.CAP_PROP_N_THREADS, 1])
        if not cap.isOpened():
            cap.release()
            return None
        if self.live:
            # a camera's driver queue adds latency; keep it short (ignored where unsupported)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _cause(self) -> str:
        """Why the capture did not open (OpenCV says only that it did not): the device node, or a TCP connect."""
        if self.kind == "camera":
            return camera_cause(self.spec)
        return stream_cause(str(self.spec), timeout=min(self.open_timeout, 3.0))

    def _prepare(self) -> None:
        if self.live:
            return  # opened in the capture thread: a dead camera or server must not block the loop
        path = Path(str(self.spec))
        if not path.is_file():
            raise SourceError(f"video file {path} does not exist{did_you_mean(path)}")
        cap = self._open_capture()
        if cap is None:
            raise SourceError(f"OpenCV cannot open {path} as a video (unsupported container or codec?); "
                              "try an .avi/.mp4 file or an image folder")
        self._cap = cap

    def _run(self, put, stop: threading.Event) -> None:
        cap, self._cap = self._cap, None
        if cap is None:
            cap = self._open_capture()
            if cap is None:
                raise SourceFailed(f"cannot open {self.kind} {self.name}: {self._cause()}", at_open=True)
        try:
            self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            period = 1.0 / self.fps if self.realtime and 0 < self.fps < 1000 else 0.0
            index, t0, n_since_t0 = 0, time.monotonic(), 0
            while not stop.is_set():
                ok, image = cap.read()
                if not ok or image is None:
                    if self.live:
                        raise SourceFailed(f"{self.name}: no frame (read failed or timed out)")
                    if self.loop and index > 0:
                        cap.release()
                        cap = self._open_capture()
                        if cap is None:
                            raise SourceFailed(f"cannot reopen {self.name}")
                        t0, n_since_t0 = time.monotonic(), 0
                        continue
                    return  # end of file
                if image.ndim != 3 and self.kind == "camera":
                    image = unflatten(image, cap)
                if not put(Frame(image=image, index=index, timestamp=time.time())):
                    return
                index += 1
                if period:
                    n_since_t0 += 1
                    delay = t0 + n_since_t0 * period - time.monotonic()
                    if delay > 0:
                        stop.wait(delay)
        finally:
            cap.release()


SMALL_FRAME = 640 * 480  # pixels: a file with frames up to this size is decoded on one thread


def _small(cap) -> bool:
    w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    return 0 < w * h <= SMALL_FRAME


def unflatten(image: np.ndarray, cap) -> np.ndarray:
    """A camera frame as OpenCV should have returned it: H x W x 3 BGR.

    OpenCV 4.11's V4L2 backend hands frames of some pixel formats back as one flat row (opencv#27166, fixed
    in 4.12), and 4.11 is the newest wheel for Bookworm's numpy 1.24: a camera offering BGR24 (vivid, some
    USB cameras) gave (1, 921600) arrays that were classified as noise and could not be saved as JPEG.
    """
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1")
    return unflatten_as(image, w, h, fourcc)


def unflatten_as(image: np.ndarray, width: int, height: int, fourcc: str) -> np.ndarray:
    """`image`'s bytes as a `width` x `height` BGR frame of V4L2 pixel format `fourcc`.

        >>> bgr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
        >>> bool((unflatten_as(bgr.reshape(1, -1), 3, 2, "BGR3") == bgr).all())
        True
        >>> unflatten_as(bgr.reshape(1, -1), 3, 2, "RGB3")[0, 0].tolist()
        [2, 1, 0]
    """
    flat, pixels = image.reshape(-1), width * height
    if flat.size == pixels * 3 and fourcc in ("BGR3", "RGB3"):
        bgr = flat.reshape(height, width, 3)
        return bgr[..., ::-1].copy() if fourcc == "RGB3" else bgr
    if flat.size == pixels * 2 and fourcc in ("YUYV", "YUY2", "UYVY"):
        code = cv2.COLOR_YUV2BGR_UYVY if fourcc == "UYVY" else cv2.COLOR_YUV2BGR_YUYV
        return cv2.cvtColor(flat.reshape(height, width, 2), code)
    if flat.size == pixels and fourcc in ("GREY", "Y800"):
        return cv2.cvtColor(flat.reshape(height, width), cv2.COLOR_GRAY2BGR)
    if image.ndim == 2 and image.shape[0] == height and image.shape[1] == width:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    raise SourceFailed(f"the camera gives {fourcc!r} frames of shape {image.shape} ({width}x{height}) that OpenCV "
                       f"{cv2.__version__} did not convert to BGR; set another pixel format with "
                       "`v4l2-ctl --set-fmt-video=pixelformat=YUYV` or upgrade opencv-python-headless")
