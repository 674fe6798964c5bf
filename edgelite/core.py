"""What the workstation and the device agent both need to know about files: standard library only.

`edgelite.bundle` (workstation and `edgelite run`) and the device agent (a zipapp with no edgelite
install behind it, `edgelite.deploy.agent`) import these instead of writing their own: the manifest's
file name, a file's sha256, and JSON written atomically (a reader never sees half a file).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> write_json(p, {"b": 1, "a": [2]}); read_json(p)
    {'a': [2], 'b': 1}
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: the bundle's manifest, at the bundle's root
MANIFEST = "edgelite.json"


def confined_file(root: str | os.PathLike, rel: object) -> Path:
    """`root`/`rel` when `rel` is a relative path that stays inside `root` and names a regular file.

    A manifest is input: `../elsewhere/model.tflite`, `/etc/passwd` or a symlink out of the bundle
    would make a checksum vouch for a file the bundle does not hold, and `/dev/zero` would never end.
    Raises ValueError with the reason (the caller words it as its own error).

    >>> confined_file("/tmp", "../etc/passwd")
    Traceback (most recent call last):
    ...
    ValueError: '../etc/passwd' is not a relative path inside the bundle
    """
    if not isinstance(rel, str) or not rel or "\0" in rel or os.path.isabs(rel):
        raise ValueError(f"{rel!r:.60} is not a relative path inside the bundle")
    base = Path(root).resolve()
    p = (base / rel).resolve()
    if p == base or base not in p.parents:
        raise ValueError(f"{rel!r:.60} is not a relative path inside the bundle")
    if not p.exists():
        raise FileNotFoundError(f"{rel[:60]} is missing")
    if not p.is_file():
        raise ValueError(f"{rel!r:.60} is not a regular file")
    return p


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


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
               default: Callable[[Any], Any] | None = None) -> None:
    """`obj` as JSON (one trailing newline), written atomically (see `write_text_atomic`)."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n"
    write_text_atomic(path, text)


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The JSON in `path`, or `default` when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
