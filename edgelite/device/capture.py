"""`edgelite capture`: save frames from the camera the model will see into DATA_DIR/LABEL/, ready for
`edgelite train` (numpy + OpenCV + the standard library, like the rest of `edgelite.device`).

The frames come through `open_source`, the same path as `edgelite run` (camera index, /dev/videoN,
picamera2, a URL, a video file or an image folder), so the training photos have the sensor, lens, light
and compression the deployed model meets. A file or folder is played at its frame rate when `every` > 0,
so `--every` means the same seconds it means on a camera.

The card is shared with the OS and the service: under `--min-free` MB free (default 200, as `run
--save-uncertain`), or when a write fails (full after all, read-only), capture says so once, keeps reading and
saves again as soon as there is room (`card.CardWriter`); its summary counts the frames it could not save.

    >>> summary = capture(CaptureOptions(source="0", out="data", label="cat", every=0.5, count=40))  # doctest: +SKIP
    >>> summary.saved, summary.folder                                                               # doctest: +SKIP
    (40, PosixPath('data/cat'))
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgelite.device.errors import EndOfSource, RunError, SourceFailed
from edgelite.device.options import MIN_FREE_MB
from edgelite.device.outputs.card import CardWriter
from edgelite.device.outputs.uncertain import time_stamp
from edgelite.device.sources import open_source
from edgelite.device.sources.rtsp import redact_url, set_rtsp_transport

READ_SLICE = 0.2  # s: the longest a read waits before the loop looks at stop/count again
SPACE_RETRY = 2.0  # s between looks at a card that was under --min-free or refused a write


@dataclasses.dataclass(frozen=True)
class CaptureOptions:
    """Every option of `edgelite capture`; field names are the CLI flags with '-' -> '_'."""

    source: str = "0"
    out: str = "data"
    label: str = ""
    every: float = 1.0  # seconds between saved frames; 0 = every frame
    count: int | None = None  # stop after N frames; None = until the source ends or Ctrl-C / SIGTERM
    quality: int = 92  # JPEG quality
    rtsp_transport: str | None = None
    open_timeout: float = 10.0
    stall_timeout: float = 5.0
    min_free: float = MIN_FREE_MB  # MB left free on the card: saving pauses below it, resumes above

    def validate(self) -> None:
        label = self.label
        if not label or label in (".", "..") or label.startswith(".") or "/" in label or "\\" in label:
            raise RunError(f"--label {label!r}: a class name is one folder name (no '/', not starting with '.'), "
                           "e.g. --label cat")
        if self.every < 0:
            raise RunError("--every must be >= 0 seconds (0 = every frame)")
        if self.count is not None and self.count < 1:
            raise RunError("--count must be at least 1")
        if not 1 <= self.quality <= 100:
            raise RunError("--quality must be within 1..100")
        if self.min_free < 0:
            raise RunError("--min-free must be at least 0 MB (0 = write until the card is full)")
        if self.open_timeout <= 0 or self.stall_timeout <= 0:
            raise RunError("--open-timeout and --stall-timeout must be positive")


@dataclasses.dataclass
class CaptureSummary:
    saved: int
    seen: int  # frames read from the source
    folder: Path
    seconds: float
    reason: str  # end of source | count reached | stopped
    unsaved: int = 0  # frames due to be saved that the card had no room for (or refused)
    problem: str | None = None  # why, the last time a frame could not be saved

    def line(self) -> str:
        line = (f"saved {self.saved} frames of {self.seen} read into {self.folder} in {self.seconds:.1f} s "
                f"({self.reason})")
        if self.unsaved:
            line += f"; {self.unsaved} not saved ({self.problem})"
        return line + f"; train with: edgelite train {self.folder.parent} --out runs/NAME"


def capture(opts: CaptureOptions, *, stop: threading.Event | None = None, retry_s: float = SPACE_RETRY,
            say: Callable[[str], object] | None = None) -> CaptureSummary:
    """Save frames of `opts.source` into `opts.out/opts.label/` until `count`, the source's end or `stop`.
    `say` gets one line when the card stops taking frames and one when it takes them again."""
    opts.validate()
    stop = stop or threading.Event()
    folder = Path(opts.out).expanduser() / opts.label
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"--out {opts.out}: cannot create {folder} ({e.strerror})") from None
    card = CardWriter(folder, min_free_mb=opts.min_free, retry_s=retry_s, quality=opts.quality,
                      say=say or logging.getLogger("edgelite.device").warning)
    set_rtsp_transport(opts.rtsp_transport, opts.source)
    t0 = time.monotonic()
    saved = seen = 0
    last_saved: float | None = None
    reason = "stopped"
    # a file or folder plays at its frame rate, so --every counts the seconds a camera would
    src = open_source(opts.source, realtime=opts.every > 0, open_timeout=opts.open_timeout,
                      read_timeout=opts.stall_timeout)
    try:
        last_frame = time.monotonic()
        while not stop.is_set():
            frame = src.read(READ_SLICE)
            if frame is None:
                if time.monotonic() - last_frame > opts.stall_timeout:
                    raise SourceFailed(f"no frame from {redact_url(opts.source)} for {opts.stall_timeout:g} s")
                continue
            seen += 1
            last_frame = time.monotonic()
            if last_saved is not None and frame.timestamp - last_saved < opts.every:
                continue
            last_saved = frame.timestamp
            if card.save(f"{opts.label}_{time_stamp(frame.timestamp)}", frame.image) is None:
                continue  # under --min-free or the card refused: said once, the next frame is tried
            saved += 1
            if opts.count is not None and saved >= opts.count:
                reason = "count reached"
                break
    except EndOfSource:
        reason = "end of source"
    except SourceFailed as e:
        if saved == 0:
            raise RunError(f"{e}; nothing was saved") from None
        raise RunError(f"the source failed after {saved} saved frames: {e}; check the camera or URL "
                       "and run again (the frames saved so far are kept)") from None
    except KeyboardInterrupt:
        reason = "stopped (Ctrl-C)"
    finally:
        src.close(timeout=0.5)
    if seen == 0 and reason == "end of source":
        raise RunError(f"{redact_url(opts.source)} ended before a frame was read; is it an empty video?")
    if saved == 0 and card.skipped:
        raise RunError(f"nothing saved into {folder} ({card.skipped} frames due): {card.last_problem}")
    return CaptureSummary(saved, seen, folder, time.monotonic() - t0, reason, card.skipped, card.last_problem)
