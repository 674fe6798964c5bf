"""What a --source value names, from its text alone: the one rule `edgelite run`, `deploy` and `fleet` share.

Standard library only (the workstation's deploy plan imports it without numpy or OpenCV); whether a
path is a file or a folder is the caller's question, asked where the path is (here, or on the device).

    >>> [source_kind(s) for s in ("0", "/dev/video2", "rtsp://cam/1", "picamera2:1", "heldout", "clip.mp4", "imx500")]
    ['camera', 'camera', 'stream', 'picamera2', 'heldout', 'path', 'imx500']
"""

from __future__ import annotations

import re

#: `--source heldout`: a video of the bundle's held-out images, made on the device
HELDOUT = "heldout"
#: `--source imx500`: the Raspberry Pi AI Camera, running the bundle's imx500 network on its sensor
IMX500 = "imx500"
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
_PICAMERA_N = re.compile(r"^(picamera2?)(?::(\d+))?$", re.I)


def picamera_number(spec: str | int) -> int | None:
    """The camera number of a picamera2 source (`picamera2` -> 0, `picamera2:1` -> 1), else None.

    >>> picamera_number("picamera2:1"), picamera_number("picamera2"), picamera_number("0")
    (1, 0, None)
    """
    m = _PICAMERA_N.match(str(spec))
    return int(m.group(2) or 0) if m else None


def source_kind(spec: str | int) -> str:
    """'picamera2' | 'imx500' | 'camera' (an index or /dev/...) | 'stream' (a URL) | 'heldout' | 'path'."""
    s = str(spec)
    if picamera_number(s) is not None:
        return "picamera2"
    if s.lower() == IMX500:
        return IMX500
    if s.isdigit() or s.startswith("/dev/"):
        return "camera"
    if s.lower().startswith(URL_SCHEMES) or "://" in s:
        return "stream"
    return HELDOUT if s == HELDOUT else "path"


def camera_device(spec: str | int) -> str | None:
    """The /dev node a camera source opens (`0` -> /dev/video0), else None.

    >>> camera_device("2"), camera_device("/dev/video1"), camera_device("picamera2")
    ('/dev/video2', '/dev/video1', None)
    """
    s = str(spec)
    if source_kind(s) != "camera":
        return None
    return s if s.startswith("/dev/") else f"/dev/video{s}"
