"""A camera index, /dev/video device, network URL (live) or video file, through OpenCV's `VideoCapture`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2

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
