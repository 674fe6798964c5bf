"""RTSP (and other URL) sources: transport choice for OpenCV's FFmpeg backend, and URLs safe to print.

OpenCV's pip wheels read RTSP through FFmpeg, configured only by the environment variable
``OPENCV_FFMPEG_CAPTURE_OPTIONS`` ("key;value|key;value", read at each `VideoCapture` open). When it is
unset OpenCV asks FFmpeg for ``rtsp_transport=tcp``; `--rtsp-transport udp` sets it to UDP (lower latency
on a clean LAN, lost packets become broken frames), `tcp` makes the default explicit (through NAT,
Wi-Fi, VPNs). The pip wheels have no GStreamer backend, so this is the one knob there is.

    >>> redact_url("rtsp://admin:hunter2@10.0.0.7:554/stream1")
    'rtsp://admin:***@10.0.0.7:554/stream1'
"""

from __future__ import annotations

import os
import re

from edgelite.device.errors import RunError

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
TRANSPORTS = ("tcp", "udp")
RTSP_SCHEMES = ("rtsp://", "rtsps://")

_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@]*)@")


def redact_url(value: str) -> str:
    """`value` with the password of a URL's user:password@ replaced by ***; anything else unchanged."""
    m = _USERINFO.match(value)
    if not m or ":" not in m.group(2):
        return value
    user = m.group(2).split(":", 1)[0]
    return f"{m.group(1)}{user}:***@{value[m.end():]}"


def is_rtsp(source: str) -> bool:
    return str(source).lower().startswith(RTSP_SCHEMES)


def set_rtsp_transport(transport: str | None, source: str) -> None:
    """Make the next `VideoCapture` opens use `transport` for RTSP (keeps other options already in the env)."""
    if transport is None:
        return
    if transport not in TRANSPORTS:
        raise RunError(f"--rtsp-transport {transport!r}: choose tcp or udp")
    if not is_rtsp(source):
        raise RunError(f"--rtsp-transport is for rtsp:// sources; {redact_url(str(source))!r} is not one — drop it")
    pairs = [p for p in os.environ.get(FFMPEG_OPTIONS_ENV, "").split("|") if p and not p.startswith("rtsp_transport;")]
    os.environ[FFMPEG_OPTIONS_ENV] = "|".join([f"rtsp_transport;{transport}", *pairs])
