"""The bundle manifest's file name and how it vouches for a file: the file's sha256, and a manifest path
confined to the bundle. Standard library only: `edgelite.bundle` and the device agent (a zipapp with no
edgelite install behind it) both import it, so the name and the hashing exist once.

    >>> MANIFEST
    'edgelite.json'
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: the bundle's manifest, at the bundle's root
MANIFEST = "edgelite.json"
#: the AI Camera's network inside a bundle on the Pi: Raspberry Pi's IMX500_PACKAGER (apt: imx500-all) makes it
#: from the bundle's packerOut.zip (the imx500 entry) when the bundle is accepted; picamera2's IMX500 loads it
IMX500_NETWORK = "imx500/network.rpk"
IMX500_PACKAGER = "imx500-package"


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
