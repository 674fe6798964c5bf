"""Frame sources for the camera loop.

One `open_source(spec)` for every kind the CLI's `--source` accepts:

=====================================  =========================================================
``0``, ``/dev/video0``                 camera through OpenCV `VideoCapture` (live)
``rtsp://…``, ``http://…`` (any URL)   network stream through OpenCV/FFmpeg (live)
``clip.mp4``                           a video file (read in order, no drops, unless realtime)
``frames/``                            an image folder (natural name order: 2.jpg before 10.jpg)
``picamera2``, ``picamera2:1``         the Raspberry Pi camera N (`picamera.py`; default 0)
``imx500``                             the AI Camera, the model running on its sensor (`imx500.py`)
=====================================  =========================================================

Every source decodes in its own capture thread (`base.Source`, handing over `Frame`s). Live
sources keep only the latest frame (the loop never lags behind the camera; overwritten frames are
counted as drops); files and folders are read ahead through a small bounded queue, so decoding
overlaps inference and no frame is dropped. `open_source` imports the source it makes (OpenCV's
`videocapture.py`, `folder.py`, `picamera.py`): importing this package imports no OpenCV.

    >>> with open_source("clip.avi") as src:            # doctest: +SKIP
    ...     frame = src.read(timeout=1.0)                # Frame(image=BGR ndarray, index=0, ...)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgelite.device.errors import SourceError
from edgelite.device.source_kind import HELDOUT, IMX500, picamera_number, source_kind
from edgelite.suggest import did_you_mean

if TYPE_CHECKING:
    from edgelite.device.sources.base import Source

def describe_source(spec: str | int) -> str:
    """'camera' | 'stream' | 'file' | 'folder' | 'picamera2' | 'imx500' | 'missing' for a --source value
    (`edgelite.device.source_kind`, and for a path whether it is here)."""
    kind = source_kind(spec)
    if kind not in ("path", HELDOUT):
        return kind
    p = Path(str(spec))
    return "folder" if p.is_dir() else "file" if p.is_file() else "missing"


def open_source(spec: str | int, *, model_size: tuple[int, int] | None = None, loop: bool = False,
                realtime: bool = False, open_timeout: float = 10.0, read_timeout: float = 5.0,
                start: bool = True, prepare=None, network: str | None = None) -> Source:
    """Make (and by default open) the source for a --source value.

    `model_size` (height, width) sizes picamera2's low-resolution inference stream; `loop` restarts
    files and folders at their end; `realtime` plays them at their frame rate, dropping frames the loop
    cannot keep up with, as a live camera would; the timeouts bound opening and each read of live sources.
    `network`: the .rpk file `imx500` loads into the sensor.
    """
    kind = describe_source(spec)
    if kind == "missing":
        raise SourceError(f"source {spec!r} is not a camera index, /dev/video device, URL, video file, image folder, "
                          f"picamera2[:N] or imx500 (no such file or folder){did_you_mean(str(spec))}")
    if kind == IMX500:
        from edgelite.device.sources.imx500 import IMX500Source

        if network is None:
            raise SourceError("--source imx500 runs a bundle's imx500 network: give a bundle made with "
                              "`edgelite convert RUN --formats imx500`")
        src: Source = IMX500Source(network, model_size=model_size or (0, 0))
    elif kind == "picamera2":
        from edgelite.device.sources.picamera import PicameraSource

        src = PicameraSource(model_size=model_size, camera_num=picamera_number(spec))
    elif kind == "folder":
        from edgelite.device.sources.folder import FolderSource

        src = FolderSource(spec, loop=loop, realtime=realtime)
    elif kind == "camera":
        from edgelite.device.sources.videocapture import VideoSource

        s = str(spec)
        src = VideoSource(int(s) if s.isdigit() else s, live=True, open_timeout=open_timeout,
                          read_timeout=read_timeout)
    else:
        from edgelite.device.sources.videocapture import VideoSource

        src = VideoSource(str(spec), live=(kind == "stream"), open_timeout=open_timeout, read_timeout=read_timeout,
                          loop=loop, realtime=realtime)
    src.prepare = prepare  # e.g. Pipeline.prepare: resize in the capture thread, overlapping inference
    return src.open() if start else src
