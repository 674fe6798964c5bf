"""JSON and text files written atomically (a reader never sees half a file), and read back forgivingly.
Standard library only: the workstation and the device agent (`edgelite.deploy.agent`) write their state
files through it.

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


def write_text_atomic(path: str | os.PathLike, text: str, mode: int = 0o644) -> None:
    """Write `text` to `path` through a temp file in the same folder: fsync, then rename(2) over `path`.

    A crash leaves the old file or the new one, never half of one; the temp file is removed when
    anything fails. `mode`: mkstemp makes 0600, but a device service may run as another user.
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
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 1, sort_keys: bool = True,
               default: Callable[[Any], Any] | None = None, mode: int = 0o644) -> None:
    """`obj` as JSON (one trailing newline), written atomically (see `write_text_atomic`)."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n"
    write_text_atomic(path, text, mode)


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The JSON in `path`, or `default` when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
