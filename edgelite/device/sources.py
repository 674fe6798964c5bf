"""Frame sources for the camera loop.

One `open_source(spec)` for every kind the CLI's `--source` accepts:

=====================================  =========================================================
``0``, ``/dev/video0``                 camera through OpenCV `VideoCapture` (live)
``rtsp://…``, ``http://…`` (any URL)   network stream through OpenCV/FFmpeg (live)
``clip.mp4``                           a video file (read in order, no drops, unless realtime)
``frames/``                            an image folder (natural name order: 2.jpg before 10.jpg)
``picamera2``, ``picamera2:1``         the Raspberry Pi camera N (`edgelite.device.picamera`; default 0)
=====================================  =========================================================

Every source decodes in its own capture thread (`edgelite.device.frames.Source`, with `Frame`). Live
sources keep only the latest frame (the loop never lags behind the camera; overwritten frames are
counted as drops); files and folders are read ahead through a small bounded queue, so decoding
overlaps inference and no frame is dropped.

    >>> with open_source("clip.avi") as src:            # doctest: +SKIP
    ...     frame = src.read(timeout=1.0)                # Frame(image=BGR ndarray, index=0, ...)
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path

import cv2

from edgelite.core import IMAGE_SUFFIXES
from edgelite.device.errors import SourceError, SourceFailed
from edgelite.device.frames import Frame, Source
from edgelite.device.rtsp import redact_url
from edgelite.device.source_kind import HELDOUT, picamera_number, source_kind

log = logging.getLogger("edgelite.device")

# ---------------------------------------------------------------------------------------- OpenCV
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

    def _prepare(self) -> None:
        if self.live:
            return  # opened in the capture thread: a dead camera or server must not block the loop
        path = Path(str(self.spec))
        if not path.is_file():
            raise SourceError(f"video file {path} does not exist")
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
                raise SourceFailed(f"cannot open {self.name} (timeout {self.open_timeout:g} s)")
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


# ---------------------------------------------------------------------------------------- folders
def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


class FolderSource(Source):
    """The images of a folder in natural name order, decoded ahead in the capture thread."""

    live = False
    kind = "folder"

    def __init__(self, path: str | os.PathLike, *, loop: bool = False, realtime: bool = False,
                 fps: float = 30.0, readahead: int = 16):
        self.path = Path(path)
        self.loop, self.realtime, self.fps = loop, realtime, fps
        super().__init__(str(path), capacity=1 if realtime else readahead, drop=realtime)
        self.files: list[Path] = []
        self.unreadable = 0

    def _prepare(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"image folder {self.path} does not exist")
        self.files = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                            key=lambda p: _natural_key(p.name))
        if not self.files:
            raise SourceError(f"{self.path} holds no images ({', '.join(IMAGE_SUFFIXES)})")

    def _run(self, put, stop: threading.Event) -> None:
        period = 1.0 / self.fps if self.realtime and self.fps > 0 else 0.0
        index, t0 = 0, time.monotonic()
        while not stop.is_set():
            for f in self.files:
                if stop.is_set():
                    return
                image = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if image is None:
                    self.unreadable += 1
                    log.warning("skipping %s: not a readable image", f)
                    continue
                if not put(Frame(image=image, index=index, timestamp=time.time(), file=f.name)):
                    return
                index += 1
                if period:
                    delay = t0 + index * period - time.monotonic()
                    if delay > 0:
                        stop.wait(delay)
            if not self.loop or index == 0:
                return


# ---------------------------------------------------------------------------------------- factory
def describe_source(spec: str | int) -> str:
    """'camera' | 'stream' | 'file' | 'folder' | 'picamera2' | 'missing' for a --source value
    (`edgelite.device.source_kind`, and for a path whether it is here)."""
    kind = source_kind(spec)
    if kind not in ("path", HELDOUT):
        return kind
    p = Path(str(spec))
    return "folder" if p.is_dir() else "file" if p.is_file() else "missing"


def open_source(spec: str | int, *, model_size: tuple[int, int] | None = None, loop: bool = False,
                realtime: bool = False, open_timeout: float = 10.0, read_timeout: float = 5.0,
                start: bool = True, prepare=None) -> Source:
    """Make (and by default open) the source for a --source value.

    `model_size` (height, width) sizes picamera2's low-resolution inference stream; `loop` restarts
    files and folders at their end; `realtime` plays them at their frame rate, dropping frames the loop
    cannot keep up with, as a live camera would; the timeouts bound opening and each read of live sources.
    """
    kind = describe_source(spec)
    if kind == "missing":
        raise SourceError(f"source {spec!r} is not a camera index, /dev/video device, URL, video file, image folder "
                          "or picamera2[:N] (no such file or folder)")
    if kind == "picamera2":
        from edgelite.device.picamera import PicameraSource

        src: Source = PicameraSource(model_size=model_size, camera_num=picamera_number(spec))
    elif kind == "folder":
        src = FolderSource(spec, loop=loop, realtime=realtime)
    elif kind == "camera":
        s = str(spec)
        src = VideoSource(int(s) if s.isdigit() else s, live=True, open_timeout=open_timeout,
                          read_timeout=read_timeout)
    else:
        src = VideoSource(str(spec), live=(kind == "stream"), open_timeout=open_timeout, read_timeout=read_timeout,
                          loop=loop, realtime=realtime)
    src.prepare = prepare  # e.g. Pipeline.prepare: resize in the capture thread, overlapping inference
    return src.open() if start else src
