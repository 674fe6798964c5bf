"""The frames to review: what `run --save-uncertain` and `capture` write (and `deploy --pull-frames` copies),
read back from their names, ordered most uncertain first. Standard library only.

`--save-uncertain` names a frame ``<time>_<top-1>-<score>_<top-2>-<score>_<top-3>-<score>.jpg`` (labels made
file-name safe by `safe_name`), `capture` names one ``<label>_<time>.jpg``; `save_jpeg` appends ``-2``, ``-3``
when a name is taken. A name that fits neither is still a frame, without scores or time.

    >>> parse_name("20261130-204501-123_cat-0.41_dog-0.33_bird-0.10-2.jpg")
    (1796071501.123, [('cat', 0.41), ('dog', 0.33), ('bird', 0.1)])
    >>> parse_name("holiday.jpg")
    (None, [])
"""

from __future__ import annotations

import calendar
import dataclasses
import os
import re
from pathlib import Path

from edgelite.images import IMAGE_SUFFIXES
from edgelite.review.errors import ReviewError

_TIME = r"(\d{8})-(\d{6})-(\d{3})"
_UNCERTAIN = re.compile(rf"^{_TIME}_(.+)$")
_CAPTURE = re.compile(rf"^.+_{_TIME}(?:-\d+)?$")
_GUESS = re.compile(r"^(.+)-([01]\.\d+)(?:-\d+)?$")
#: what a label (a DATA_DIR sub-folder) may be called: no path separators, no hidden or dot names
_LABEL = re.compile(r"^[^/\\\x00-\x1f\x7f.][^/\\\x00-\x1f\x7f]{0,63}$")


@dataclasses.dataclass
class Frame:
    """One file in FRAMES_DIR: `rel` its path there ('/'-separated), `top` the recorded (label, score) guesses."""

    id: int
    rel: str
    device: str
    time: float | None
    top: list[tuple[str, float]]
    size: int
    mtime_ns: int



def _stamp(day: str, hms: str, ms: str) -> float | None:
    # by hand: time.strptime costs 80 us a name, a minute's wait on 50,000 frames
    y, mo, d, h, mi, s = int(day[:4]), int(day[4:6]), int(day[6:]), int(hms[:2]), int(hms[2:4]), int(hms[4:])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 62):
        return None
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + int(ms) / 1000


def parse_name(name: str) -> tuple[float | None, list[tuple[str, float]]]:
    """(capture time in s since the epoch or None, [(label, score)] recorded in the name) of a frame file."""
    stem = name.rsplit(".", 1)[0]
    m = _UNCERTAIN.match(stem)
    if m:
        top = []
        for part in m.group(4).split("_")[:3]:
            g = _GUESS.match(part)
            if g:
                top.append((g.group(1), float(g.group(2))))
        return _stamp(*m.groups()[:3]), top
    m = _CAPTURE.match(stem)
    return (_stamp(*m.groups()), []) if m else (None, [])


def check_label(label: str, flag: str = "label") -> str:
    """`label` if it can name a folder of DATA_DIR, else a ReviewError (no '/', '..', hidden or control chars).

    >>> check_label("traffic light")
    'traffic light'
    """
    if not isinstance(label, str) or not _LABEL.match(label) or label.strip() != label:
        raise ReviewError(f"{flag} {label!r}: a class name must be a plain folder name (no '/', '\\\\', leading '.', "
                          "control characters or surrounding spaces, at most 64 characters); rename it")
    return label


def scan(folder: Path) -> tuple[list[Frame], list[str]]:
    """(frames, skipped) of every image file under `folder`, recursively; hidden files and folders (the
    review's own .review/ and .discarded/) are left out, and so are symbolic links (they may point anywhere).
    A frame in a sub-folder is from the device named by its first folder (`--pull-frames frames/HOST`)."""
    frames: list[Frame] = []
    skipped: list[str] = []
    own = folder.resolve().name
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        rel_dir = base.relative_to(folder).as_posix()
        for name in sorted(filenames):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            try:
                st = (base / name).lstat()
            except OSError:
                continue
            if not _regular(st.st_mode):
                skipped.append(rel)
                continue
            t, top = parse_name(name)
            device = rel.split("/", 1)[0] if "/" in rel else own
            frames.append(Frame(len(frames), rel, device, t, top, st.st_size, st.st_mtime_ns))
    return frames, skipped


def _regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def classes_of(data_dir: Path) -> list[str]:
    """The class folders already in DATA_DIR (sorted; hidden ones and bad names left out)."""
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir() if p.is_dir() and _LABEL.match(p.name))


def match_labels(top: list[tuple[str, float]], labels: list[str]) -> list[tuple[str, float]]:
    """The recorded guesses with their file-name-safe labels mapped back to the class names they came from."""
    from edgelite.device.outputs.uncertain import safe_name

    by_safe = {safe_name(label): label for label in labels}
    return [(by_safe.get(name, name), score) for name, score in top]
