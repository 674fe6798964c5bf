"""JSON and text files written atomically and durably (a reader never sees half a file, a power cut leaves
the old file or the new one), and read back forgivingly. Standard library only: the workstation and the
device agent (`edgelite.deploy.agent`) write their state files through it.

Why the folder is fsync'ed too: rename(2) is atomic, but after a power cut only what reached the disk is
there. The file's bytes need an fsync of the file before the rename (else ext4 may commit the new name over
a zero-length file), and the rename itself needs an fsync of the folder (else the old name comes back).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> write_json(p, {"b": 1, "a": [2]}); read_json(p)
    {'a': [2], 'b': 1}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync the folder `path`: the names created, renamed or removed in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """fsync every regular file and folder under `root` (symlinks are not followed): call it before the
    rename that publishes `root`, so what the new name shows is on the disk."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(folder, name)
            if os.path.islink(p):
                continue
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)


def rename_durably(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """rename(2) `src` (already fsync'ed) to `dest` and fsync the folder(s), so the new name survives a power cut."""
    os.replace(src, dest)
    fsync_dir(Path(dest).parent)
    if Path(src).parent != Path(dest).parent:
        fsync_dir(Path(src).parent)


def write_text_atomic(path: str | os.PathLike, text: str, mode: int = 0o644) -> None:
    """Write `text` to `path` through a temp file in the same folder: fsync, rename(2) over `path`, fsync
    the folder.

    A crash or a power cut leaves the old file or the new one, never half of one; the temp file is removed
    when anything fails. `mode`: mkstemp makes 0600, but a device service may run as another user.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        rename_durably(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 1, sort_keys: bool = True,
               default: Callable[[Any], Any] | None = None, mode: int = 0o644) -> None:
    """`obj` as JSON (one trailing newline), written atomically (see `write_text_atomic`)."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n"
    write_text_atomic(path, text, mode)


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The JSON in `path`, or `default` when it is missing or not valid JSON (a file a power cut tore,
    written by something else than `write_json`: zeros, half a line, bytes that are not UTF-8)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
