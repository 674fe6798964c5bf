"""Where results go: console lines, JSON lines, an OpenCV window, low-confidence frames kept on disk.
(The preview web server is `preview.py`.)

Each output has `write(result, frame)` and `close()`; the loop calls them in order after every frame.
`save_jpeg` is the one way a device writes a frame to disk (`edgelite capture` and `--save-uncertain`).
"""

from __future__ import annotations

import collections
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from edgelite.device.errors import RunError
from edgelite.device.options import RunOptions
from edgelite.device.pipeline import Result
from edgelite.device.sources import Frame

log = logging.getLogger("edgelite.device")


def open_outputs(o: RunOptions, on_quit=None) -> list:
    """The outputs `o` asks for, besides the preview server and MQTT: --json, the console, --display,
    --save-uncertain (an output that is off is not in the list: no per-frame cost)."""
    outputs: list = []
    if o.json:
        outputs.append(JsonLinesOutput(o.json))
    if o.console_every:
        outputs.append(ConsoleOutput(sys.stderr if o.json == "-" else sys.stdout, every=o.console_every))
    if o.display:
        outputs.append(DisplayOutput(on_quit=on_quit))
    if o.save_uncertain:
        outputs.append(UncertainOutput(o.save_uncertain, below=o.below, max_per_hour=o.max_per_hour,
                                       max_mb=o.max_mb, min_gap=o.uncertain_gap))
    return outputs


def silence_stdout() -> None:
    """Point stdout at /dev/null so flushing at exit does not raise again on a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def format_line(result: Result) -> str:
    """`frame 12  red 0.98 | green 0.01  ·  123.4 fps  capture 0.31 pre 0.05 inf 0.30 post 0.02 ms`"""
    t = result.timings_ms
    labels = " | ".join(f"{p.label} {p.score:.2f}" for p in result.top_k) or "(below threshold)"
    mark = " *" if result.changed else ""
    return (f"frame {result.frame:>6}  {labels}{mark}  ·  {result.fps:6.1f} fps  capture {t['capture']:.2f} "
            f"pre {t['preprocess']:.2f} inf {t['inference']:.2f} post {t['postprocess']:.2f} ms")


class ConsoleOutput:
    """One human-readable line per result, or every N results (a label change is marked with *)."""

    def __init__(self, stream: IO[str] | None = None, every: int = 1):
        self.stream = stream or sys.stdout
        self.every = max(1, every)

    def write(self, result: Result, frame: Frame) -> None:
        if result.frame % self.every == 0:
            self.stream.write(format_line(result) + "\n")
            self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class JsonLinesOutput:
    """One JSON object per line (`Result.to_json()`, the JSON of `Result.to_dict()`). Lines are flushed
    at most every `flush_every` seconds (and whenever the loop waits for a frame, and at the end): a pipe
    reader sees every result within 20 ms — a 30 fps camera's lines one by one — without a write()
    system call, and a reader's wake-up, for every frame of a model running 1,000 frames a second."""

    FLUSH_EVERY = 0.02  # s

    def __init__(self, target: str | os.PathLike, flush_every: float = FLUSH_EVERY):
        self.target = str(target)
        self.flush_every = flush_every
        self._next_flush = 0.0  # the first line goes out at once
        if self.target == "-":
            self.stream, self._own = sys.stdout, False
        else:
            try:
                self.stream, self._own = open(self.target, "w", encoding="utf-8"), True
            except OSError as e:
                raise RunError(f"cannot write --json {self.target}: {e.strerror}") from None

    def write(self, result: Result, frame: Frame) -> None:
        self.stream.write(result.to_json() + "\n")
        now = time.monotonic()
        if now >= self._next_flush:
            self.stream.flush()
            self._next_flush = now + self.flush_every

    def flush(self) -> None:
        """Push out what is buffered (the loop calls it while it waits for a frame)."""
        self.stream.flush()
        self._next_flush = time.monotonic() + self.flush_every

    def close(self) -> None:
        self.stream.flush()
        if self._own:
            self.stream.close()


# ---------------------------------------------------------------------------------------- overlay
def draw_overlay(image: np.ndarray, result: Result | None, *, extra: str | None = None) -> np.ndarray:
    """A copy of `image` (BGR) with the top-k labels, FPS and inference time on a dark panel, top left."""
    out = image.copy() if image.ndim == 3 and image.shape[2] == 3 else cv2.cvtColor(
        image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_BGRA2BGR)
    if result is None:
        return out
    lines = [f"{p.label} {p.score:.2f}" for p in result.top_k] or ["(below threshold)"]
    lines.append(f"{result.fps:.1f} fps  inf {result.timings_ms['inference']:.1f} ms")
    if extra:
        lines.append(extra)
    scale = max(0.4, min(1.0, out.shape[0] / 480))
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1 if scale < 0.7 else 2
    sizes = [cv2.getTextSize(t, font, scale, thick)[0] for t in lines]
    step = max(h for _, h in sizes) + int(10 * scale) + 2
    width = min(out.shape[1], max(w for w, _ in sizes) + 16)
    height = min(out.shape[0], step * len(lines) + 8)
    panel = out[:height, :width]
    panel[...] = (panel * 0.35).astype(np.uint8)  # darken behind the text, keep the frame visible
    for i, text in enumerate(lines):
        colour = (90, 255, 90) if i == 0 and result.label is not None else (255, 255, 255)
        cv2.putText(out, text, (8, 4 + step * (i + 1) - int(5 * scale)), font, scale, colour, thick, cv2.LINE_AA)
    return out


def gui_available() -> str | None:
    """None when OpenCV can open a window here, else the reason it cannot."""
    info = cv2.getBuildInformation()
    for line in info.splitlines():
        if line.strip().startswith("GUI:") and line.split(":", 1)[1].strip().upper() == "NONE":
            return ("this OpenCV is the headless build (no GUI); `pip install opencv-python` in place of "
                    "opencv-python-headless for --display, or watch the preview page with --http")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set); run on the desktop or watch the preview page with --http"
    return None


class DisplayOutput:
    """An OpenCV window with the overlay; `q` or Esc stops the loop (through `on_quit`)."""

    WINDOW = "edgelite"

    def __init__(self, on_quit=None):
        reason = gui_available()
        if reason:
            raise RunError(f"--display: {reason}")
        try:
            cv2.namedWindow(self.WINDOW, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise RunError(f"--display: OpenCV cannot open a window ({str(e).strip().splitlines()[-1]})") from None
        self.on_quit = on_quit

    def write(self, result: Result, frame: Frame) -> None:
        cv2.imshow(self.WINDOW, draw_overlay(frame.image, result))
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) and self.on_quit:
            self.on_quit()

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.WINDOW)
        except cv2.error:
            pass


# ---------------------------------------------------------------------------------------- frames on disk
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """`text` as a file-name part: letters, digits, '.', '_' and '-' only (a label may hold spaces or '/').

    >>> safe_name("traffic light/red")
    'traffic-light-red'
    """
    return _UNSAFE.sub("-", text).strip("-.") or "x"


def save_jpeg(folder: Path, stem: str, image: np.ndarray, quality: int = 92) -> Path:
    """Write `image` (BGR) as `folder/stem.jpg` — or `stem-2.jpg`, ... when taken — and return the path.

    Written to a hidden `.part` file first and renamed, so `edgelite train` (which skips hidden files) and
    a `--pull-frames` copy never see half a JPEG. A full disk is a RunError that says so.
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
        part.write_bytes(buf.tobytes())
        os.replace(part, path)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise RunError(f"cannot write frames to {folder}: {e.strerror}; free some space or pick another folder") from None
    return path


def time_stamp(t: float) -> str:
    """`20261130-204501-123` (UTC, milliseconds): sorts in capture order, safe in file names."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)) + f"-{int(t * 1000) % 1000:03d}"


def folder_bytes(folder: Path) -> int:
    """Bytes of the JPEGs already in `folder` (they count against a size cap across restarts)."""
    return sum(p.stat().st_size for p in folder.glob("*.jpg") if p.is_file())


class UncertainOutput:
    """`--save-uncertain DIR`: keep the frames the model was unsure of, to label and retrain on.

    A frame is kept when its top-1 score is below `below` (or no class passed --threshold); it is named
    `<time>_<top-1>-<score>_<top-2>-<score>....jpg`. Capped so a device's SD card never fills: at most
    `max_per_hour` frames in any rolling hour, and at most `max_mb` MB in DIR (the frames already there
    count; when full, saving stops with one warning until `edgelite deploy --pull-frames` or a user makes
    room). `min_gap` seconds between kept frames keeps a burst from filling the hour with near-copies.
    """

    def __init__(self, folder: str | os.PathLike, *, below: float = 0.6, max_per_hour: int = 60,
                 max_mb: float = 200.0, min_gap: float = 1.0, quality: int = 92):
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

    def write(self, result: Result, frame: Frame) -> None:
        if result.top_k and result.score >= self.below:
            return  # the common case: confident, one comparison
        now = time.monotonic()
        while self.kept and now - self.kept[0] >= 3600.0:
            self.kept.popleft()
        if len(self.kept) >= self.max_per_hour or (self.kept and now - self.kept[-1] < self.min_gap):
            self.skipped_rate += 1
            return
        if self.used >= self.max_bytes:
            self.skipped_full += 1
            if not self._warned_full:
                self._warned_full = True
                log.warning("--save-uncertain: %s holds %.0f MB, the --max-mb cap; not saving more frames until "
                            "they are pulled (edgelite deploy --pull-frames) or removed", self.folder, self.used / 1e6)
            return
        guesses = "_".join(f"{safe_name(p.label)}-{p.score:.2f}" for p in result.top_k[:3]) or "none"
        path = save_jpeg(self.folder, f"{time_stamp(frame.timestamp)}_{guesses}", frame.image, self.quality)
        self.used += path.stat().st_size
        self.kept.append(now)
        self.saved += 1

    def close(self) -> None:
        if self.saved or self.skipped_rate or self.skipped_full:
            log.info("--save-uncertain: kept %d frames in %s (%d skipped by the rate cap, %d by the size cap)",
                     self.saved, self.folder, self.skipped_rate, self.skipped_full)
