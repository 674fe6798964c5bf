"""Why a camera or stream did not open, in words a user can act on.

OpenCV's `VideoCapture` answers only "not opened"; the cause (no such device, no permission, a refused
connection) is in OpenCV's and FFmpeg's log lines, which `edgelite run` keeps off the screen unless -v.
These checks find it again from the outside, with the standard library only: the device node and its
permissions for a camera, one TCP connect for a stream.

    >>> camera_path(7), camera_path("/dev/video2")
    ('/dev/video7', '/dev/video2')
    >>> stream_address("rtsp://admin:pw@cam.local/stream1"), stream_address("http://10.0.0.7:8080/video")
    (('cam.local', 554), ('10.0.0.7', 8080))
"""

from __future__ import annotations

import glob
import os
import socket
from urllib.parse import urlsplit

#: the port a URL without one connects to
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}


def camera_path(spec: str | int) -> str:
    """The device node a camera --source opens: an index N is /dev/videoN (OpenCV's V4L2 backend)."""
    s = str(spec)
    return f"/dev/video{s}" if s.isdigit() else s


def camera_cause(spec: str | int) -> str:
    """Why camera `spec` did not open: no such node (naming the cameras there are), no permission, or busy."""
    path = camera_path(spec)
    if not os.path.exists(path):
        there = sorted(glob.glob("/dev/video*"))
        if not there:
            return f"no {path}: this machine has no cameras (ls /dev/video*)"
        return f"no {path}: the cameras here are {', '.join(there)}"
    if not os.access(path, os.R_OK | os.W_OK):
        return (f"no permission to open {path}: add the user to its group (sudo usermod -aG video $USER, "
                "then log in again)")
    return f"{path} exists but did not open: in use by another program (fuser {path}) or not a capture device"


def stream_address(url: str) -> tuple[str, int] | None:
    """(host, port) a stream URL connects to, or None when the URL names no host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname, port or DEFAULT_PORTS.get(parts.scheme.lower(), 554)


def stream_cause(url: str, timeout: float = 3.0) -> str:
    """Why stream `url` did not open, from one TCP connect to its host and port."""
    address = stream_address(url)
    if address is None:
        return "the URL names no host (e.g. rtsp://HOST:554/PATH)"
    host, port = address
    where = f"{host}:{port}"
    try:
        with socket.create_connection(address, timeout=timeout):
            pass
    except ConnectionRefusedError:
        return f"connection refused by {where} (is the camera or server running, and is {port} its port?)"
    except socket.gaierror:
        return f"cannot resolve the host {host!r} (check the URL)"
    except TimeoutError:
        return f"no answer from {where} within {timeout:g} s (camera off, wrong address or a firewall)"
    except OSError as e:
        return f"cannot connect to {where}: {e.strerror or e}"
    return (f"{where} accepts connections but the stream did not open (wrong path or credentials, or a codec "
            "OpenCV lacks? -v shows FFmpeg's messages)")
