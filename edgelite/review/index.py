"""Thumbnails, near-duplicate groups and the review order of a frames folder.

Thumbnails are made once per file (keyed by its path, size and modification time) and cached in
FRAMES_DIR/.review/thumbs (a temporary folder when FRAMES_DIR is read-only). Near-duplicates: consecutive
frames of one device (in capture order, at most GROUP_GAP s apart) whose 16x16 grey signatures differ by
less than GROUP_DIFF grey levels on average form one group, so one decision labels a still scene. The
signatures are cached in .review/signatures.npz, so a folder of 50,000 frames is decoded once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

from edgelite.review.frames import Frame

THUMB = 160  # px, the longer side of a thumbnail
SIG = 16  # px, the side of a grouping signature
GROUP_DIFF = 6.0  # mean absolute difference (0-255 grey levels) under which two consecutive frames are one scene
GROUP_GAP = 30.0  # s between two frames of one group at most (when their names carry the time)
CACHE = ".review"


def cache_dir(frames_dir: Path) -> Path:
    """FRAMES_DIR/.review, or a private temporary folder when FRAMES_DIR cannot be written."""
    d = frames_dir / CACHE
    try:
        (d / "thumbs").mkdir(parents=True, exist_ok=True)
        if os.access(d / "thumbs", os.W_OK):
            return d
    except OSError:
        pass
    d = Path(tempfile.mkdtemp(prefix="edgelite-review-"))
    (d / "thumbs").mkdir()
    return d


def _key(f: Frame) -> str:
    return hashlib.sha1(f"{f.rel}\0{f.size}\0{f.mtime_ns}".encode()).hexdigest()


class Index:
    """The frames of FRAMES_DIR in review order, their groups, and their cached thumbnails."""

    def __init__(self, frames_dir: Path, frames: list[Frame], *, progress=None):
        self.root = frames_dir
        self.frames = frames
        self.cache = cache_dir(frames_dir)
        self.unreadable: set[int] = set()
        self._lock = threading.Lock()
        sigs = self._signatures(progress)
        self.groups = self._group(sigs)
        self.order = self.rank()

    # ------------------------------------------------------------------ signatures and groups
    def _signatures(self, progress) -> np.ndarray:
        """(N, SIG*SIG) float32 grey signatures, NaN for a file that is not an image; cached by file key."""
        store = self.cache / "signatures.npz"
        cached: dict[str, np.ndarray] = {}
        try:
            with np.load(store) as z:
                cached = dict(zip(z["keys"].tolist(), z["sigs"], strict=True))
        except (OSError, ValueError, KeyError):
            pass
        keys = [_key(f) for f in self.frames]
        out = np.full((len(self.frames), SIG * SIG), np.nan, np.float32)
        fresh = 0
        for i, (f, k) in enumerate(zip(self.frames, keys, strict=True)):
            sig = cached.get(k)
            if sig is None:
                sig = self._signature(self.root / f.rel)
                fresh += 1
                if progress and fresh % 2000 == 0:
                    progress(f"indexed {i + 1} of {len(self.frames)} frames")
            out[i] = sig
            if np.isnan(sig[0]):
                self.unreadable.add(f.id)
        if fresh:
            try:
                tmp = self.cache / ".signatures.tmp.npz"
                np.savez(tmp, keys=np.asarray(keys), sigs=out)
                os.replace(tmp, store)
            except OSError:
                pass  # a cache that cannot be written costs the next start a re-index, nothing else
        return out

    @staticmethod
    def _signature(path: Path) -> np.ndarray:
        grey = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_4)
        if grey is None or grey.size == 0:
            return np.full(SIG * SIG, np.nan, np.float32)
        return cv2.resize(grey, (SIG, SIG), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()

    def _group(self, sigs: np.ndarray) -> list[list[int]]:
        """Groups of frame ids: runs of consecutive near-identical frames of one device, in capture order."""
        seq = sorted(range(len(self.frames)), key=lambda i: (self.frames[i].device, self.frames[i].time or 0.0,
                                                             self.frames[i].rel))
        groups: list[list[int]] = []
        prev = None
        for i in seq:
            f = self.frames[i]
            if prev is not None and self._same_scene(self.frames[prev], f, sigs[prev], sigs[i]):
                groups[-1].append(i)
            else:
                groups.append([i])
            prev = i
        return groups

    @staticmethod
    def _same_scene(a: Frame, b: Frame, sa: np.ndarray, sb: np.ndarray) -> bool:
        if a.device != b.device or np.isnan(sa[0]) or np.isnan(sb[0]):
            return False
        if a.time is not None and b.time is not None and abs(b.time - a.time) > GROUP_GAP:
            return False
        return float(np.abs(sa - sb).mean()) < GROUP_DIFF

    def rank(self, scores: dict | None = None) -> list[int]:
        """Group numbers, most uncertain first: by the smallest top-1 minus top-2 margin among a group's frames
        (`scores` {frame id: [(label, score)]} replace the recorded ones); groups without scores come last."""
        def margin(f: Frame) -> float | None:
            top = (scores or {}).get(f.id, f.top)
            return None if not top else top[0][1] - (top[1][1] if len(top) > 1 else 0.0)

        self._margin = margin

        def key(g: int):
            margins = [m for m in (margin(self.frames[i]) for i in self.groups[g]) if m is not None]
            return (0, min(margins)) if margins else (1, 0.0)
        return sorted(range(len(self.groups)), key=key)

    def representative(self, g: int) -> Frame:
        """The frame a group shows: its most uncertain one."""
        members = [(self._margin(self.frames[i]), self.frames[i]) for i in self.groups[g]]
        return min(members, key=lambda mf: (mf[0] is None, mf[0] or 0.0))[1]

    # ------------------------------------------------------------------ thumbnails
    def thumbnail(self, frame_id: int) -> bytes | None:
        """JPEG bytes of a frame's thumbnail (made once, then read from the cache); None when not an image."""
        f = self.frames[frame_id]
        path = self.cache / "thumbs" / f"{_key(f)}.jpg"
        try:
            return path.read_bytes()
        except OSError:
            pass
        img = cv2.imread(str(self.root / f.rel), cv2.IMREAD_REDUCED_COLOR_2 if f.size > 200_000 else cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            with self._lock:
                self.unreadable.add(frame_id)
            return None
        h, w = img.shape[:2]
        s = THUMB / max(h, w)
        if s < 1:
            img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        data = buf.tobytes()
        try:
            tmp = path.with_name(f".{path.name}.{threading.get_ident()}.part")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            pass
        return data

    def warm(self, count: int, stop: threading.Event) -> None:
        """Make the thumbnails of the first `count` groups in review order (a background thread at start)."""
        for g in self.order[:count]:
            if stop.is_set():
                return
            for i in self.groups[g][:1] + [self.representative(g).id]:
                self.thumbnail(i)
