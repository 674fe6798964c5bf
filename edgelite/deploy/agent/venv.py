"""The device's venvs: `python3 -m venv --system-site-packages` + the edgelite wheel, one builder at a time.

With --offline the workstation has resolved the whole wheel set already (`pip download` into the wheelhouse), so
the device installs that list --no-deps; when it also sent uv's wheel (`installer`), uv installs it into a venv
made --without-pip: no pip start-up, no resolver, no byte-compiling under an emulated or a Pi's slow CPU.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from edgelite.deploy.agent.layout import AgentError, Layout, now_iso, say
from edgelite.errors import EXIT_REMOTE, EXIT_USAGE
from edgelite.jsonfile import fsync_tree, read_json, rename_durably, write_json
from edgelite.remote.layout import VENV_READY

# the versions a deploy reports
REPORTED = ("edgelite", "numpy", "opencv-python-headless", "ai-edge-litert", "paho-mqtt")
# an extra's name (PEP 685): it becomes part of pip's `WHEEL[extra]` argument
EXTRA = re.compile(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*")


def venv_versions(v: Path) -> dict:
    """The versions the venv sees (its own packages first, then the system's, as --system-site-packages
    orders them), read here: starting the venv's Python for it costs seconds on a Pi or under emulation."""
    import importlib.metadata as md

    own = sorted(str(p) for p in v.glob("lib/python3*/site-packages"))
    system = [p for p in sys.path if p.endswith(("dist-packages", "site-packages"))]
    out = {}
    for name in REPORTED:
        found = next(iter(md.distributions(name=name, path=own + system)), None)
        if found is not None:
            out[name] = found.version
    return out


def cmd_venv(lay: Layout, req: dict) -> dict:
    """Create venvs/<env> with --system-site-packages (apt's picamera2 stays visible) and install edgelite."""
    env = str(req["env"])
    lay.ensure()
    # A deploy killed on the workstation can leave its agent still building this venv on the device.
    # One builder per venv: wait for it, then reuse what it finished.
    with open(lay.run / f"venv-{env}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"venv {env} is being built by an earlier deploy; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        wheels = req.get("wheels")
        return build_venv(lay, env, req["wheel"], find_links=req.get("find_links"),
                          constraints=req.get("constraints"), offline=bool(req.get("offline")),
                          wheels=[str(w) for w in wheels] if isinstance(wheels, list) else None,
                          installer=req.get("installer"), extras=checked_extras(req.get("extras")))


def checked_extras(extras) -> list[str]:
    """The request's edgelite extras (["mqtt"]): a list of plain names, or one line that says what is wrong."""
    if extras in (None, []):
        return []
    if not isinstance(extras, list) or not all(isinstance(e, str) and EXTRA.fullmatch(e) for e in extras):
        raise AgentError(f"extras: expected a list of extra names like [\"mqtt\"], got {str(extras)[:80]!r}", EXIT_USAGE)
    return extras


def build_venv(lay: Layout, env: str, wheel: str, *, find_links: str | None = None, constraints: str | None = None,
               offline: bool = False, wheels: list[str] | None = None, installer: str | None = None,
               extras: list[str] | None = None) -> dict:
    v = lay.venvs / env
    ready = v / VENV_READY
    if ready.exists():
        return {"reused": True, **(read_json(ready) or {})}
    shutil.rmtree(v, ignore_errors=True)
    t0 = time.monotonic()
    resolved = offline and wheels is not None and find_links  # the workstation resolved the set: --no-deps
    uv = unpack_installer(lay, installer) if resolved and installer else None
    say(f"creating {v}" + (" (uv)" if uv else ""))
    venv = [sys.executable, "-m", "venv", "--system-site-packages", *(["--without-pip"] if uv else []), str(v)]
    subprocess.run(venv, check=True, stdout=sys.stderr)
    files = [os.path.join(str(find_links), w) for w in wheels or []] + [str(wheel)]
    if uv:
        cmd = [uv, "pip", "install", "--python", str(v / "bin" / "python"), "--offline", "--no-index", "--no-deps",
               "--no-cache", "--no-progress", "--link-mode=copy", *files]
    else:
        cmd = [str(v / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "--progress-bar", "off", "--no-cache-dir"]
        if offline:
            cmd += ["--no-index", "--find-links", str(find_links)]
        elif find_links:
            cmd += ["--find-links", str(find_links)]
        if constraints:
            cmd += ["-c", str(constraints)]
        # resolved: the extras' wheels are in `files` already; else pip finds them (e.g. paho-mqtt for [mqtt])
        cmd += (["--no-deps", *files] if resolved else [str(wheel) + (f"[{','.join(extras)}]" if extras else "")])
    say("$ " + " ".join(shlex.quote(c) for c in cmd))
    r = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
    if r.returncode != 0:
        shutil.rmtree(v, ignore_errors=True)
        raise AgentError(f"{'uv' if uv else 'pip'} install failed (exit {r.returncode}); see the lines above",
                         EXIT_REMOTE)
    versions = venv_versions(v)
    # `.ready` says "complete": everything pip/uv wrote must be on the disk first, or a power cut leaves a
    # venv of empty files that every later deploy reuses (thousands of files: one sync beats an fsync each)
    os.sync()
    info = {"versions": versions, "seconds": round(time.monotonic() - t0, 1), "created": now_iso(),
            "installer": "uv" if uv else "pip",
            # what it was built from: gc keeps these while the venv is kept (and drops the rest)
            "wheels": [str(p) for p in (wheel, find_links, constraints, installer) if p]}
    write_json(ready, info)
    return {"reused": False, **info}


def unpack_installer(lay: Layout, wheel: str) -> str | None:
    """uv's binary out of its wheel (`uv-X.data/scripts/uv`) into DIR/wheels/tools/<wheel>/, once; None (and pip
    is used) when the wheel holds none or it does not run here."""
    w = Path(wheel)
    dest = lay.wheels / "tools" / w.stem / "uv"
    if not dest.is_file():
        try:
            with zipfile.ZipFile(w) as z:
                name = next((n for n in z.namelist() if n.endswith(".data/scripts/uv")), None)
                if name is None:
                    say(f"{w.name} holds no uv binary; installing with pip")
                    return None
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_suffix(".tmp")
                tmp.write_bytes(z.read(name))
        except (OSError, zipfile.BadZipFile) as e:
            say(f"cannot unpack {w.name} ({e}); installing with pip")
            return None
        tmp.chmod(0o755)
        fsync_tree(tmp.parent)
        rename_durably(tmp, dest)
    r = subprocess.run([str(dest), "--version"], capture_output=True, text=True)
    if r.returncode != 0:
        say(f"{dest} does not run here ({(r.stderr or '').strip()[-120:]}); installing with pip")
        return None
    return str(dest)
