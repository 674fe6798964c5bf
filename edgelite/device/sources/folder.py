"""An image folder as a frame source: its images in natural name order (2.jpg before 10.jpg).

    >>> sorted(["10.jpg", "2.jpg", "1.jpg"], key=_natural_key)
    ['1.jpg', '2.jpg', '10.jpg']
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path

import cv2

from edgelite.device.errors import SourceError
from edgelite.device.frames import Frame
from edgelite.device.sources.base import Source
from edgelite.images import IMAGE_SUFFIXES

log = logging.getLogger("edgelite.device")


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
