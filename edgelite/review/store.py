"""The reviewer's decisions: label (move into DATA_DIR/LABEL/), discard (move into FRAMES_DIR/.discarded/),
skip, undo, and confirm (the one step that deletes: the discarded frames). Standard library only.

Every labelled or discarded frame gets a row in DATA_DIR/review.csv (PROVENANCE): where it came from,
which device and when, which model scored it and how, and what the reviewer did. Undo moves the files of
the last decision back and removes its rows. Files are moved, never copied or overwritten: a name taken
in the class folder gets a `-2`, `-3` suffix.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from edgelite.review.errors import ReviewError
from edgelite.review.frames import Frame
from edgelite.review.index import Index

PROVENANCE = "review.csv"
DISCARDED = ".discarded"
COLUMNS = ["file", "label", "action", "source", "device", "time", "model", "top3", "group", "reviewed"]


@dataclass
class Decision:
    group: int
    action: str  # label | discard | skip
    label: str = ""
    moves: list[tuple[Path, Path]] = field(default_factory=list)  # (from, to) per frame, in order
    rows: list[dict] = field(default_factory=list)


def _iso(t: float | None) -> str:
    if t is None:
        return ""
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _free(path: Path) -> Path:
    """`path`, or `stem-2.suffix`, ... when taken."""
    n, out = 1, path
    while out.exists():
        n += 1
        out = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return out


class Store:
    """What has been decided, group by group; thread-safe (the web server calls it from request threads)."""

    def __init__(self, index: Index, data_dir: Path, labels: list[str], *, model: str = "recorded",
                 scores: dict[int, list[tuple[str, float]]] | None = None):
        self.index, self.data_dir, self.labels, self.model = index, data_dir, labels, model
        self.scores = scores or {}
        self.decided: dict[int, Decision] = {}
        self.history: list[Decision] = []
        self.lock = threading.Lock()
        self.csv = data_dir / PROVENANCE
        self.discard_dir = index.root / DISCARDED

    def top(self, f: Frame) -> list[tuple[str, float]]:
        return self.scores.get(f.id, f.top)

    # ------------------------------------------------------------------ decisions
    def decide(self, group: int, action: str, label: str = "") -> Decision:
        """Label, discard or skip every frame of `group`; raises ReviewError for a bad request."""
        if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group < len(self.index.groups):
            raise ReviewError(f"no group {group!r}")
        if action == "label" and label not in self.labels:
            raise ReviewError(f"label {label!r} is not a class of this review ({', '.join(self.labels)})")
        if action not in ("label", "discard", "skip"):
            raise ReviewError(f"action {action!r}: label, discard or skip")
        with self.lock:
            if group in self.decided:
                raise ReviewError(f"group {group} is already decided ({self.decided[group].action}); undo first")
            members = [self.index.frames[i] for i in self.index.groups[group]]
            if action == "label" and any(f.id in self.index.unreadable for f in members):
                raise ReviewError("this frame is not a readable image: discard it (x)")
            d = Decision(group, action, label)
            try:
                for f in members:
                    if action == "skip":
                        continue
                    src = self.index.root / f.rel
                    if action == "label":
                        dst = _free(self.data_dir / label / self._dest_name(f))
                    else:
                        dst = _free(self.discard_dir / f.rel)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(src), str(dst))
                    d.moves.append((src, dst))
                    d.rows.append(self._row(f, d, dst))
            except OSError as e:
                self._move_back(d)
                raise ReviewError(f"cannot move {f.rel}: {e.strerror or e}; check the folders' permissions") from None
            if d.rows:
                self._append(d.rows)
            self.decided[group] = d
            self.history.append(d)
            return d

    def undo(self) -> Decision | None:
        """Take back the last decision: its files back where they were, its rows out of the CSV."""
        with self.lock:
            if not self.history:
                return None
            d = self.history[-1]
            try:
                self._move_back(d)
            except OSError as e:
                raise ReviewError(f"cannot undo: {e.strerror or e} (a file was moved or removed by hand since)") from None
            self.history.pop()
            if d.rows:
                self._remove_rows({r["file"] or r["source"] for r in d.rows}, d.action)
            del self.decided[d.group]
            return d

    def confirm(self) -> int:
        """Delete the discarded frames (the only deletion); they can no longer be undone. Returns how many."""
        with self.lock:
            n = 0
            if self.discard_dir.is_dir():
                n = sum(1 for p in self.discard_dir.rglob("*") if p.is_file())
                shutil.rmtree(self.discard_dir)
            self.history = [d for d in self.history if d.action != "discard"]
            return n

    def discarded_waiting(self) -> int:
        return sum(len(d.moves) for d in self.history if d.action == "discard")

    # ------------------------------------------------------------------ files
    def _dest_name(self, f: Frame) -> str:
        name = f.rel.rsplit("/", 1)[-1]
        return f"{f.device}_{name}" if "/" in f.rel else name

    def _row(self, f: Frame, d: Decision, dst: Path) -> dict:
        top = self.top(f)
        return {"file": dst.relative_to(self.data_dir).as_posix() if d.action == "label" else "",
                "label": d.label, "action": d.action, "source": f.rel, "device": f.device, "time": _iso(f.time),
                "model": self.model if top else "", "top3": "; ".join(f"{lab} {s:.3f}" for lab, s in top[:3]),
                "group": d.group, "reviewed": _iso(_dt.datetime.now(_dt.timezone.utc).timestamp())}

    def _move_back(self, d: Decision) -> None:
        while d.moves:  # one at a time: a failure leaves the moves not yet taken back, for a retry
            src, dst = d.moves[-1]
            src.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(dst), str(src))
            d.moves.pop()

    def _append(self, rows: list[dict]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        new = not self.csv.exists() or self.csv.stat().st_size == 0
        with open(self.csv, "a", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, COLUMNS)
            if new:
                w.writeheader()
            w.writerows({k: _cell(v) for k, v in r.items()} for r in rows)

    def _remove_rows(self, keys: set[str], action: str) -> None:
        if not self.csv.is_file():
            return  # removed by hand while the page was open: nothing to take out
        with open(self.csv, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        # the last matching rows are the decision's (a frame labelled, undone and labelled again has one row)
        keep = [r for r in rows if not ((r["file"] or r["source"]) in keys and r["action"] == action)]
        buf = io.StringIO()
        w = csv.DictWriter(buf, COLUMNS)
        w.writeheader()
        w.writerows(keep)
        tmp = self.csv.with_name(f".{self.csv.name}.tmp")
        tmp.write_text(buf.getvalue(), encoding="utf-8")
        os.replace(tmp, self.csv)


def _cell(v) -> str:
    """A CSV cell a spreadsheet will not run: a leading = + - @ gets a quote mark (a device's name is untrusted)."""
    s = str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@") and not _number(s) else s


def _number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
