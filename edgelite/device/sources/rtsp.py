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
from urllib.parse import unquote_plus

from edgelite.device.errors import RunError

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
TRANSPORTS = ("tcp", "udp")
RTSP_SCHEMES = ("rtsp://", "rtsps://")

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)")
#: query keys IP cameras (and their vendors' URL schemes) put credentials in
SECRET_KEYS = {"pass", "password", "passwd", "pwd", "pw", "psw", "token", "access_token", "auth", "key", "apikey",
               "api_key", "secret", "credential", "credentials", "sig", "signature"}


def redact_url(value: str) -> str:
    """`value` with a URL's password (user:password@, split at the LAST `@` of the authority as FFmpeg does,
    so a password may hold `@`) and the values of secret query keys (`pwd=`, `password=`, `token=`, ...)
    replaced by ***; anything that is not a URL unchanged.

    >>> redact_url("rtsp://admin:p@ssw0rd@cam:554/s?user=admin&pwd=hunter2&channel=1")
    'rtsp://admin:***@cam:554/s?user=admin&pwd=***&channel=1'
    """
    m = _SCHEME.match(value)
    if not m:
        return value
    rest = value[m.end():]
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        if ":" in userinfo:
            authority = f"{userinfo.split(':', 1)[0]}:***@{host}"
    if "?" in tail:
        path, _, query = tail.partition("?")
        query, hash_, frag = query.partition("#")
        parts = []
        for part in query.split("&"):
            k, eq, v = part.partition("=")
            # the camera decodes the key (`p%77d` is `pwd`, `+` a space) before it reads it: so does this
            secret = unquote_plus(k).strip().lower() in SECRET_KEYS
            parts.append(f"{k}=***" if eq and v and secret else part)
        tail = f"{path}?{'&'.join(parts)}{hash_}{frag}"
    return f"{m.group(1)}{authority}{tail}"


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
