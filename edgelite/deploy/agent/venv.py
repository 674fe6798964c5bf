"""The device's venvs: `python3 -m venv --system-site-packages` + the edgelite wheel, one builder at a time."""

from __future__ import annotations

import fcntl
import json
import shlex
import shutil
import subprocess
import sys
import time

from edgelite.deploy.agent.layout import AgentError, Layout, now_iso, say
from edgelite.errors import EXIT_REMOTE
from edgelite.jsonfile import read_json, write_json
from edgelite.remote.layout import VENV_READY

# the versions a deploy reports, read inside the new venv
_PROBE = ("import json, importlib.metadata as md\nout = {}\n"
          "for n in ('edgelite', 'numpy', 'opencv-python-headless', 'ai-edge-litert'):\n"
          "    try:\n        out[n] = md.version(n)\n    except md.PackageNotFoundError:\n        pass\n"
          "print(json.dumps(out))")


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
        return build_venv(lay, env, req["wheel"], find_links=req.get("find_links"),
                          constraints=req.get("constraints"), offline=bool(req.get("offline")))


def build_venv(lay: Layout, env: str, wheel: str, *, find_links: str | None = None, constraints: str | None = None,
               offline: bool = False) -> dict:
    v = lay.venvs / env
    ready = v / VENV_READY
    if ready.exists():
        return {"reused": True, **(read_json(ready) or {})}
    shutil.rmtree(v, ignore_errors=True)
    t0 = time.monotonic()
    say(f"creating {v}")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(v)], check=True, stdout=sys.stderr)
    cmd = [str(v / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
           "--progress-bar", "off", "--no-cache-dir"]
    if offline:
        cmd += ["--no-index", "--find-links", str(find_links)]
    elif find_links:
        cmd += ["--find-links", str(find_links)]
    if constraints:
        cmd += ["-c", str(constraints)]
    cmd.append(str(wheel))
    say("$ " + " ".join(shlex.quote(c) for c in cmd))
    r = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
    if r.returncode != 0:
        shutil.rmtree(v, ignore_errors=True)
        raise AgentError(f"pip install failed (exit {r.returncode}); see the lines above", EXIT_REMOTE)
    out = subprocess.run([str(v / "bin" / "python"), "-c", _PROBE], capture_output=True, text=True)
    versions = json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else {}
    info = {"versions": versions, "seconds": round(time.monotonic() - t0, 1), "created": now_iso()}
    write_json(ready, info)
    return {"reused": False, **info}
