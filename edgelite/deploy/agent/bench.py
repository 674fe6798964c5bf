"""`edgelite bench --host`, the device side: a work folder, the edgelite to bench with, the run, the clean-up.

The workstation (`edgelite.bench.remote`) sends `prepare-bench` (a temporary work folder, and which edgelite
is here), copies its bundles, --data and --pipeline files (and, for a temporary install, its own edgelite
package as WORK/src/edgelite) into that folder, sends `bench`, and always ends with `clean-bench`.

Which edgelite runs the bench (the reply's `install`):

* deployed  - the venv of DIR/current's release, as `edgelite deploy` made it;
* path      - an `edgelite` command on the PATH;
* temporary - the workstation's pure-Python package, run with this python3, or - when that lacks numpy,
  OpenCV or a TFLite runtime - with a throwaway venv (WORK/venv, --system-site-packages) of the core wheels.

`bench` runs `edgelite bench TARGETS ARGS [--data D] [--pipeline P] --json -` in WORK, as a list (no
shell): its progress goes to stderr as it comes, its JSON result comes back in the reply. It runs in the
call, not detached as a switch does: it changes nothing that must outlive the workstation, its progress bar
redraws one line (`wait` hands over whole lines only), and a result nobody waits for has no reader.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgelite.deploy.agent.layout import AgentError, Layout, say
from edgelite.errors import EXIT_REMOTE, EXIT_USAGE

WORK_PREFIX = "edgelite-bench."
#: the device runtime a temporary install needs (pyproject's core dependencies)
CORE_WHEELS = ("numpy", "opencv-python-headless", "ai-edge-litert")
_HAS_RUNTIME = ("import numpy, cv2\ntry:\n    import ai_edge_litert.interpreter\n"
                "except ImportError:\n    import tflite_runtime.interpreter\n")


def find_install(lay: Layout) -> dict:
    """The edgelite that runs the bench here (see the module docstring) and the deployed bundle, if any."""
    found = lay.deployed()
    on_path = shutil.which("edgelite")
    install = "deployed" if found["edgelite"] else "path" if on_path else "temporary"
    return {"install": install, "edgelite": found["edgelite"] or on_path, "bundle": found["bundle"],
            "python": shutil.which("python3") or sys.executable}


def work_dir(req: dict) -> Path:
    """The request's `work`: only a folder `prepare-bench` made (WORK_PREFIX* in the temporary folder, ours)."""
    work = Path(str(req["work"]))
    if not (work.name.startswith(WORK_PREFIX) and work.parent.resolve() == Path(tempfile.gettempdir()).resolve()):
        raise AgentError(f"{work} is not a bench work folder (prepare-bench makes one)", EXIT_USAGE)
    if work.is_dir() and work.stat().st_uid != os.geteuid():
        raise AgentError(f"{work} belongs to another user", EXIT_USAGE)
    return work


def cmd_prepare_bench(lay: Layout, req: dict) -> dict:
    return {"work": tempfile.mkdtemp(prefix=WORK_PREFIX), **find_install(lay)}


def _strings(req: dict, field: str) -> list[str]:
    value = req.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AgentError(f"the bench request's {field} must be a list of strings", EXIT_USAGE)
    return value


def _device_path(value: str) -> str:
    if value.startswith("-"):
        raise AgentError(f"{value!r} would reach edgelite bench as an option; write ./{value}", EXIT_USAGE)
    return os.path.expanduser(value)  # `device:~/x` is the device user's home


def _temporary_python(work: Path) -> str:
    """This python3 when it has the device runtime, else a throwaway venv with the core wheels from the index."""
    if subprocess.run([sys.executable, "-c", _HAS_RUNTIME], capture_output=True).returncode == 0:
        return sys.executable
    say(f"edgelite bench: no edgelite install on the device; pip-installing {' '.join(CORE_WHEELS)} into a "
        "temporary venv")
    venv = work / "venv"
    for cmd in ([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *CORE_WHEELS]):
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=sys.stderr)
        if r.returncode != 0:
            raise AgentError(f"{' '.join(cmd[:4])} failed (exit {r.returncode}; see above): install edgelite on the "
                             "device with `edgelite deploy` (--offline brings every wheel from the workstation)",
                             EXIT_REMOTE)
    return str(venv / "bin" / "python")


def cmd_bench(lay: Layout, req: dict) -> dict:
    """Run `edgelite bench` in the work folder with the install found here; its result JSON in the reply."""
    work = work_dir(req)
    if not work.is_dir():
        raise AgentError(f"{work} does not exist: send prepare-bench first", EXIT_USAGE)
    argv = [_device_path(t) for t in _strings(req, "targets")] + _strings(req, "args")
    for flag in ("data", "pipeline"):
        if req.get(flag):
            argv += [f"--{flag}", _device_path(str(req[flag]))]
    argv += ["--json", "-"]
    info = find_install(lay)
    env = dict(os.environ)
    if info["install"] == "temporary":
        src = str(work / "src")
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [_temporary_python(work), "-m", "edgelite", "bench", *argv]
    else:
        cmd = [str(info["edgelite"]), "bench", *argv]
    p = subprocess.run(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sys.stderr)
    try:
        result = json.loads(p.stdout)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise AgentError(f"edgelite bench failed (exit code {p.returncode}); its messages are above", EXIT_REMOTE,
                         **info)
    return {"result": result, "returncode": p.returncode, "work": str(work), **info}


def cmd_clean_bench(lay: Layout, req: dict) -> dict:
    work = work_dir(req)
    existed = work.is_dir()
    shutil.rmtree(work, ignore_errors=True)
    if work.exists():
        raise AgentError(f"could not remove {work}", EXIT_REMOTE)
    return {"removed": str(work) if existed else None}
