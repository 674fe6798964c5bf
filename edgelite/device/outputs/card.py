"""Frames onto an SD card that can fill up or turn read-only: `save_jpeg` (the one way a device writes a frame)
and `CardWriter`, the low-water mark that `run --save-uncertain` and `edgelite capture` share.

The card is shared (logs, releases, the OS): a writer pauses while the filesystem holding its folder has less
than `--min-free` MB free, and when a write fails (the card full after all, remounted read-only after an I/O
error). It says why once per reason, never raises into the loop that feeds it, and resumes by itself (looked
at again every `retry_s` seconds) once there is room or the card is writable again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edgelite.device.errors import RunError
from edgelite.device.options import MIN_FREE_MB

log = logging.getLogger("edgelite.device")


def save_jpeg(folder: Path, stem: str, image: np.ndarray, quality: int = 92) -> Path:
    """Write `image` (BGR) as `folder/stem.jpg` — or `stem-2.jpg`, ... when taken — and return the path.

    Written to a hidden `.part` file first, fsync'ed and renamed, so `edgelite train` (which skips hidden
    files) and a `--pull-frames` copy never see half a JPEG, not even after a power cut. A full disk is a RunError that says so.
    """
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RunError(f"OpenCV cannot encode a {image.shape} frame as JPEG")
    path, n = folder / f"{stem}.jpg", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.jpg"
    part = folder / f".{path.name}.part"
    try:
        with open(part, "wb") as f:
            f.write(buf.tobytes())
            f.flush()
            os.fsync(f.fileno())  # else a power cut can leave the new name on an empty file (ext4's delayed data)
        os.replace(part, path)
    except OSError as e:
        with contextlib.suppress(OSError):  # read-only now: the .part cannot go either (hidden: nothing reads it)
            part.unlink(missing_ok=True)
        raise RunError(f"cannot write frames to {folder}: {e.strerror}; free some space or pick another folder") from None
    return path


def free_bytes(folder: Path) -> int | None:
    """Bytes an unprivileged writer can still use on the filesystem holding `folder` (None: cannot tell)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class CardWriter:
    """`save` writes a frame into `folder` unless the card is under the low-water mark or a write just failed;
    then it returns None, counts the frame in `skipped`, and `problem` says why (e.g. on /healthz) until a
    frame is written again. `say` gets one line per new reason and one when saving resumes."""

    def __init__(self, folder: Path, *, min_free_mb: float = MIN_FREE_MB, retry_s: float = 10.0, quality: int = 92,
                 say: Callable[[str], object] = log.warning):
        self.folder, self.quality, self.say = folder, quality, say
        self.min_free, self.retry_s = int(min_free_mb * 1e6), retry_s
        self.problem: str | None = None  # why saving is paused (low space, a write error), None while it works
        self.last_problem: str | None = None  # the latest reason, kept after saving resumed (for a summary)
        self.skipped = 0
        self._retry_at = 0.0

    def save(self, stem: str, image: np.ndarray) -> Path | None:
        now = time.monotonic()
        if now < self._retry_at:
            self.skipped += 1
            return None
        free = free_bytes(self.folder)
        if free is not None and free < self.min_free:
            self._pause(now, f"{free / 1e6:.1f} MB free on the filesystem of {self.folder}, under --min-free "
                             f"{self.min_free / 1e6:g} MB: free some space there, or lower --min-free")
            return None
        try:
            path = save_jpeg(self.folder, stem, image, self.quality)
        except RunError as e:  # full, read-only, an I/O error: no reason to stop the loop
            self._pause(now, str(e))
            return None
        if self.problem:
            self.say(f"saving frames in {self.folder} again")
            self.problem = None
        return path

    def _pause(self, now: float, why: str) -> None:
        self.skipped += 1
        self._retry_at = now + self.retry_s
        if why != self.problem:  # one line per reason, not one per frame
            self.say(f"not saving frames ({why}); trying again every {self.retry_s:g} s")
        self.problem = self.last_problem = why
