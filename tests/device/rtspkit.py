"""A real RTSP server for the tests and benchmarks: GStreamer's gst-rtsp-server (tests/device/rtsp_server.py)
run with the system python3 (Debian's python3-gi + gir1.2-gst-rtsp-server-1.0), on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")


def unavailable() -> str | None:
    """None when the RTSP server can run here, else why not (a skip reason)."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found (the RTSP test server runs with Debian's python3-gi)"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                        "from gi.repository import GstRtspServer"], capture_output=True, text=True, env=_env())
    if r.returncode != 0:
        return ("GStreamer's RTSP server is not installed (apt: gir1.2-gst-rtsp-server-1.0 python3-gi "
                "gstreamer1.0-plugins-good; scripts/system-deps.sh)")
    return None


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return env


def write_frames(folder: Path, images_rgb: np.ndarray, scale: int = 3) -> Path:
    """000.jpg, 001.jpg, ... (what the server's multifilesrc plays in a loop), enlarged `scale` x."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images_rgb):
        big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


class RtspServer:
    def __init__(self, frames: Path, port: int, *, size: int = 96, fps: int = 15, protocols: str = "any",
                 user: str | None = None, password: str | None = None):
        self.args = [SYSTEM_PYTHON, str(SERVER), "--port", str(port), "--frames", str(frames), "--size", str(size),
                     "--fps", str(fps), "--protocols", protocols, "--max-seconds", "300"]
        if user:
            self.args += ["--user", user, "--password", password or ""]
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.ready_at: float | None = None

    def url(self, user: str | None = None, password: str | None = None) -> str:
        cred = f"{user}:{password}@" if user and password is not None else (f"{user}@" if user else "")
        return f"rtsp://{cred}127.0.0.1:{self.port}/cam"

    def start(self, timeout: float = 15.0) -> RtspServer:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        end = time.monotonic() + timeout
        line = self.proc.stdout.readline()  # "READY ..." once it listens (or EOF when it failed)
        if not line.startswith("READY") or time.monotonic() > end:
            err = self.proc.stderr.read()[-500:] if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {line!r} {err}")
        self.ready_at = time.monotonic()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # the server vanishes as a camera that lost power does
            self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
