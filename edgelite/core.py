"""What the workstation, the device and the device agent all need to know: standard library only.

`edgelite.bundle` (workstation and `edgelite run`), `train`, `bench`, `device` and the device agent
(a zipapp with no edgelite install behind it, `edgelite.deploy.agent`) import these instead of writing
their own: the manifest's file name, a file's sha256, JSON written atomically (a reader never sees
half a file), the image file suffixes, and the `--http [HOST:]PORT` address rule.

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

from edgelite.errors import UsageError

#: the bundle's manifest, at the bundle's root
MANIFEST = "edgelite.json"

#: image files in a class folder (`train`, `bench --data`) or a folder source (`run --source DIR`):
#: what both decoders read (Pillow in training, OpenCV on the device)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


def find_images(folder: Path) -> list[Path]:
    """Every image file under `folder`, recursively and sorted; hidden files and folders are left out."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


#: where `--http PORT` binds (run's preview) and where a wildcard bind is reached from the same machine
LOOPBACK = "127.0.0.1"


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


def parse_http_address(value: str, *, error: type[Exception] = UsageError) -> tuple[str, int]:
    """`--http` -> (host, port): '8080' | 'HOST:8080' | '[::1]:8080'; a bare port (or ':8080') is 127.0.0.1.

    One rule for `run --http` (the preview binds it) and `deploy --http` (what the device's service
    binds and the health check probes); a bad value raises `error`.

    >>> parse_http_address("8080"), parse_http_address("[::]:9000")
    (('127.0.0.1', 8080), ('::', 9000))
    """
    v = value.strip()
    host, port_s = LOOPBACK, v
    if v.startswith("["):
        end = v.find("]")
        if end < 0 or not v[end + 1:].startswith(":"):
            raise error(f"--http {value!r}: expected [IPv6]:PORT")
        host, port_s = v[1:end], v[end + 2:]
    elif ":" in v:
        host, port_s = v.rsplit(":", 1)
        host = host or LOOPBACK
    try:
        port = int(port_s)
    except ValueError:
        raise error(f"--http {value!r}: expected PORT or HOST:PORT (e.g. 127.0.0.1:8080)") from None
    if not 0 <= port <= 65535:
        raise error(f"--http {value!r}: port must be 0..65535")
    return host, port


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost); a host name may
    resolve to anything, so it counts as exposed.

    >>> is_loopback("127.0.0.2"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("cam.local")
    (True, True, False, False)
    """
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_url(http: str, path: str = "/") -> str:
    """The URL that reaches a server bound at `--http` from the same machine (a wildcard bind through the
    loopback).

    >>> local_url("0.0.0.0:9000", "/healthz"), local_url("[::]:9000")
    ('http://127.0.0.1:9000/healthz', 'http://[::1]:9000/')
    """
    host, port = parse_http_address(http)
    host = {"0.0.0.0": LOOPBACK, "::": "::1", "localhost": LOOPBACK}.get(host, host)
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


def whoami() -> str:
    """`user@host` of this machine, recorded in each release (`?` where a container has no user name)."""
    import getpass
    import socket

    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user name is not worth a failed deploy
        return "?"
