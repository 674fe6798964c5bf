"""`--save-uncertain DIR` keeps the frames the model was unsure of (written through `card.CardWriter`, the
low-water mark `edgelite capture` shares).

    >>> safe_name("traffic light/red"), time_stamp(0.5)
    ('traffic-light-red', '19700101-000000-500')
"""

from __future__ import annotations

import collections
import logging
import os
import re
import time
from pathlib import Path

from edgelite.device.errors import RunError
from edgelite.device.frames import Frame
from edgelite.device.options import MIN_FREE_MB
from edgelite.device.outputs.base import Output
from edgelite.device.outputs.card import CardWriter
from edgelite.device.pipeline import Result

log = logging.getLogger("edgelite.device")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
FULL_RECHECK = 10.0  # s between looks at a full folder: frames pulled or removed make room again


def safe_name(text: str) -> str:
    """`text` as a file-name part: letters, digits, '.', '_' and '-' only (a label may hold spaces or '/').

    >>> safe_name("traffic light/red")
    'traffic-light-red'
    """
    return _UNSAFE.sub("-", text).strip("-.") or "x"


def time_stamp(t: float) -> str:
    """`20261130-204501-123` (UTC, milliseconds): sorts in capture order, safe in file names."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)) + f"-{int(t * 1000) % 1000:03d}"


def folder_bytes(folder: Path) -> int:
    """Bytes of the JPEGs already in `folder` (they count against a size cap across restarts)."""
    return sum(p.stat().st_size for p in folder.glob("*.jpg") if p.is_file())


class UncertainOutput(Output):
    """`--save-uncertain DIR`: keep the frames the model was unsure of, to label and retrain on.

    A frame is kept when its top-1 score is below `below` (or no class passed --threshold); it is named
    `<time>_<top-1>-<score>_<top-2>-<score>....jpg`. Capped so a device's SD card never fills: at most
    `max_per_hour` frames in any rolling hour, and at most `max_mb` MB in DIR (the frames already there
    count; when full, saving stops with one warning, and the folder is measured again every `recheck` s:
    once `edgelite deploy --pull-frames` or a user made room, saving resumes (and says so)). `min_gap` seconds
    between kept frames keeps a burst from filling the hour with near-copies.

    The card is shared (logs, releases, the OS): saving pauses while the filesystem holding DIR has less than
    `min_free_mb` MB free, and when a write fails (the card full after all, remounted read-only after an I/O
    error); the loop keeps classifying, `problem` says why, and saving resumes by itself (checked again
    every `retry_s` seconds) once there is room or the card is writable again.
    """

    def __init__(self, folder: str | os.PathLike, *, below: float = 0.6, max_per_hour: int = 60,
                 max_mb: float = 200.0, min_gap: float = 1.0, quality: int = 92, recheck: float = FULL_RECHECK,
                 min_free_mb: float = MIN_FREE_MB, retry_s: float = 10.0):
        self.folder = Path(folder).expanduser()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"--save-uncertain {folder}: cannot create it ({e.strerror})") from None
        if not os.access(self.folder, os.W_OK):
            raise RunError(f"--save-uncertain {folder}: not writable by this user; pick another folder")
        self.below, self.max_per_hour, self.min_gap, self.quality = below, max_per_hour, min_gap, quality
        self.max_bytes = int(max_mb * 1e6)
        self.used = folder_bytes(self.folder)
        self.kept: collections.deque[float] = collections.deque()  # monotonic times of the frames kept in the last hour
        self.saved = self.skipped_rate = self.skipped_full = 0
        self._warned_full = False
        self.recheck, self._checked = recheck, time.monotonic()
        self.card = CardWriter(self.folder, min_free_mb=min_free_mb, retry_s=retry_s, quality=quality,
                               say=lambda line: log.warning("--save-uncertain: %s", line))

    @property
    def problem(self) -> str | None:
        """Why saving is paused (low space, a write error; /healthz shows it), None while it works."""
        return self.card.problem

    def write(self, result: Result, frame: Frame) -> None:
        if result.top_k and result.score >= self.below:
            return  # the common case: confident, one comparison
        now = time.monotonic()
        while self.kept and now - self.kept[0] >= 3600.0:
            self.kept.popleft()
        if len(self.kept) >= self.max_per_hour or (self.kept and now - self.kept[-1] < self.min_gap):
            self.skipped_rate += 1
            return
        if self.used >= self.max_bytes and now - self._checked >= self.recheck:
            self._checked = now
            self.used = folder_bytes(self.folder)  # pulled or removed since?
            if self.used < self.max_bytes and self._warned_full:
                self._warned_full = False
                log.warning("--save-uncertain: %s has room again (%.0f of %.0f MB); saving frames again",
                            self.folder, self.used / 1e6, self.max_bytes / 1e6)
        if self.used >= self.max_bytes:
            self.skipped_full += 1
            if not self._warned_full:
                self._warned_full = True
                log.warning("--save-uncertain: %s holds %.0f MB, the --max-mb cap; not saving more frames until "
                            "some are pulled (edgelite deploy --pull-frames) or removed (looked at again every "
                            "%.0f s)", self.folder, self.used / 1e6, self.recheck)
            return
        guesses = "_".join(f"{safe_name(p.label)}-{p.score:.2f}" for p in result.top_k[:3]) or "none"
        path = self.card.save(f"{time_stamp(frame.timestamp)}_{guesses}", frame.image)
        if path is None:  # under --min-free, full after all, read-only: the loop goes on classifying
            self.skipped_full += 1
            return
        self.used += path.stat().st_size
        self.kept.append(now)
        self.saved += 1

    def close(self) -> None:
        if self.saved or self.skipped_rate or self.skipped_full:
            log.info("--save-uncertain: kept %d frames in %s (%d skipped by the rate cap, %d by the size cap)",
                     self.saved, self.folder, self.skipped_rate, self.skipped_full)
