"""What a device sends back (`deploy --pull-frames`), made safe here: regular files only, as 0600 files in
0700 folders, never outside the folder, and capped in size and number so a device cannot fill this disk.

The caps: no file over `MAX_FILE_MB` (a frame is a JPEG), and per pull at most `MAX_FILES` files and
`MAX_MB` MB (`deploy --pull-max-files / --pull-max-mb`). At a cap the copy stops, one warning says so, and
only the files received are removed on the device: the next pull brings the rest.

    >>> Caps(max_files=2, max_mb=1).room_for(2, 10), Caps(max_files=2).room_for(3, 10)
    (True, False)
"""

from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edgelite.remote.errors import EXIT_USAGE, RemoteError

MAX_FILE_MB = 50  # a frame is a JPEG: 50 MB is generous
MAX_FILES = 20_000  # per pull
MAX_MB = 2048  # per pull

MB = 1 << 20


@dataclass
class Caps:
    """How much one pull may bring: files no larger than `max_file_mb`, at most `max_files` and `max_mb` in all."""

    max_files: int = MAX_FILES
    max_mb: float = MAX_MB
    max_file_mb: float = MAX_FILE_MB

    def __post_init__(self) -> None:
        for flag, value in (("--pull-max-files", self.max_files), ("--pull-max-mb", self.max_mb),
                            ("the per-file cap", self.max_file_mb)):
            if not value or value <= 0:
                raise RemoteError(f"{flag} {value}: give a number above 0", EXIT_USAGE)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MB)

    def room_for(self, count: int, total: int) -> bool:
        """True while `count` files of `total` bytes are within the caps."""
        return count <= self.max_files and total <= self.max_mb * MB

    def warning(self, source: str, count: int, total: int) -> str:
        return (f"warning: stopped pulling from {source} at {count} files / {total / MB:.0f} MB (the caps are "
                f"{self.max_files} files and {self.max_mb:g} MB per pull: --pull-max-files / --pull-max-mb); "
                "only what came is removed there: run the same pull again for the rest")

    def skipped(self, source: str, names: list[str]) -> str:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return (f"warning: left {len(names)} files over {self.max_file_mb:g} MB on {source} ({shown}): a frame "
                "is never that large; look at what the device saved there")


def inside(root: Path, name: str) -> bool:
    """True when the relative `name` (from a device) stays inside `root` here.

    >>> inside(Path("/tmp/pulled"), "a/b.jpg"), inside(Path("/tmp/pulled"), "../../x"), inside(Path("/tmp/pulled"), "/etc/x")
    (True, False, False)
    """
    if os.path.isabs(name):
        return False
    base = os.path.abspath(root)
    return os.path.commonpath([base, os.path.abspath(os.path.join(base, name))]) == base


def plain_files(root: Path, names: list[str]) -> list[str]:
    """Of the `names` copied into `root`, those that are regular files inside it, each made 0600 (every folder
    under `root` 0700); anything else a device sent (a symlink, a device node, a fifo) is removed and left out."""
    kept = []
    for name in names:
        path = root / name
        if not inside(root, name):
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            os.chmod(path, 0o600)
            kept.append(name)
        elif not stat.S_ISDIR(st.st_mode):
            path.unlink()
    for d, dirs, _ in os.walk(root):  # every folder the copy made (a tar's parents too, kept files or not)
        for name in dirs:
            if not os.path.islink(os.path.join(d, name)):
                os.chmod(os.path.join(d, name), 0o700)
    return kept


class Listing:
    """The files an rsync pull asks for: `add` each line of `rsync --list-only --no-h` (`-rw-r--r-- 1234
    2026/12/04 12:00:00 name`); False once the next file would pass a cap (the caller stops the listing).
    Files over the per-file cap go to `oversized`; links, devices, hidden and unprintable names are left."""

    def __init__(self, caps: Caps):
        self.caps = caps
        self.names: list[str] = []
        self.oversized: list[str] = []
        self.total, self.capped = 0, False

    def add(self, line: str) -> bool:
        parts = line.split(None, 4)
        if len(parts) < 5 or not parts[0].startswith("-") or not parts[1].isdigit():
            return True  # a folder, a link, a device: never asked for
        size, name = int(parts[1]), parts[4]
        if "\\#" in name or any(p.startswith(".") for p in name.split("/")) or not inside(Path("/x"), name):
            return True
        if size > self.caps.max_file_bytes:
            self.oversized.append(name)
            return True
        if not self.caps.room_for(len(self.names) + 1, self.total + size):
            self.capped = True
            return False
        self.names.append(name)
        self.total += size
        return True


class Tally:
    """The files an rsync copy brought, by their sizes here (not the ones a device announces): `add` each
    name as rsync reports it; False once past a cap (a device that sent more than it listed: stop it)."""

    def __init__(self, root: Path, caps: Caps):
        self.root, self.caps = root, caps
        self.names: list[str] = []
        self.count = self.total = 0
        self.oversized: list[str] = []

    def add(self, name: str) -> bool:
        path = self.root / name
        try:
            st = os.lstat(path) if inside(self.root, name) else None
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            if st.st_size > self.caps.max_file_bytes:
                path.unlink()  # a device's rsync that ignored --max-size
                self.oversized.append(name)
                return True
            self.count += 1
            self.total += st.st_size
        self.names.append(name)  # not a regular file: plain_files removes it
        return self.caps.room_for(self.count, self.total)


def extract(stream: IO[bytes], local: Path, caps: Caps) -> tuple[list[str], list[str], bool]:
    """Unpack a device's tar stream into `local`: regular files and folders only, hidden ones skipped, never
    outside `local` (tarfile's "data" filter), files over the per-file cap skipped. (names, oversized, capped):
    `capped` when the stream was left at the count or byte cap (the caller stops the device's tar)."""
    names: list[str] = []
    oversized: list[str] = []
    total = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if Path(member.name).name.startswith("."):
                continue  # a frame still being written (`.NAME.part`); skipped here, never removed there
            if not inside(local, member.name):
                continue  # `../x` or `/x` from a device: never outside local_dir
            if member.isfile() and member.size > caps.max_file_bytes:
                oversized.append(os.path.normpath(member.name))
                continue  # its data is read past, never written
            if member.isfile() and not caps.room_for(len(names) + 1, total + member.size):
                return names, oversized, True
            # an entry that cannot land as a plain file or folder (`x/.`, a file where a folder is, a
            # name too long) is skipped, like one the data filter refuses
            try:
                if member.isfile():
                    tar.extract(member, local, filter="data")
                    names.append(os.path.normpath(member.name))
                    total += member.size
                elif member.isdir():
                    (local / member.name).mkdir(mode=0o700, parents=True, exist_ok=True)
            except (tarfile.FilterError, OSError):
                continue
    return names, oversized, False
