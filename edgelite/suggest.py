"""'did you mean bundles/demo?' for a path that does not exist: the one rule every "does not exist" message
shares (stdlib only; the device and the agent may use it).

    >>> import tempfile, os
    >>> root = tempfile.mkdtemp(); os.mkdir(os.path.join(root, "demo"))
    >>> did_you_mean(os.path.join(root, "dmeo")) == f"; did you mean {os.path.join(root, 'demo')}?"
    True
    >>> did_you_mean(os.path.join(root, "zzzzzz"))
    ''
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path


def close_path(path: str | os.PathLike) -> Path | None:
    """An existing path one typo away from `path` (each missing component matched among its siblings)."""
    p = Path(path)
    parts = p.parts
    if not parts:
        return None
    cur = Path(parts[0]) if p.is_absolute() else Path(".")
    rest = parts[1:] if p.is_absolute() else parts
    changed = False
    for name in rest:
        nxt = cur / name
        if not nxt.exists():
            try:
                siblings = [c.name for c in cur.iterdir() if not c.name.startswith(".")]
            except OSError:
                return None
            match = difflib.get_close_matches(name, siblings, n=1, cutoff=0.6)
            if not match:
                return None
            nxt, changed = cur / match[0], True
        cur = nxt
    if not changed:
        return None
    return cur if p.is_absolute() else Path(os.path.relpath(cur))


def did_you_mean(path: str | os.PathLike) -> str:
    """'; did you mean X?' when an existing path is one typo (per component) away from `path`, else ''."""
    found = close_path(path)
    return f"; did you mean {found}?" if found is not None else ""
