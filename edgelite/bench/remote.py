"""`edgelite bench --host user@host`: the same bench, run on the device over SSH, result pulled back.

One SSH session (`edgelite.remote`: the same host-key policy, identity, known_hosts and connection
reuse as `edgelite deploy`), all with BatchMode (keys only, never a password prompt):

1. probe: the device's python3 runs `edgelite/remote/layout.py` (sent as source) to make a temporary
   directory and find edgelite there — the deployed install (the venv of DIR/current's release, as
   `edgelite deploy` lays it out under --dir, default ~/edgelite), else `edgelite` on the PATH, else
   none ("temporary": this edgelite's pure-Python package is copied over and run with the device's
   python3, in a throwaway venv with the core wheels when python3 lacks numpy/OpenCV/LiteRT); it
   answers one JSON line;
2. upload + run: local bundles/models (and --data, --pipeline files) go over as one tar stream, then
   `edgelite bench ... --json -` runs there; its progress bar streams to this terminal, its JSON comes
   back on stdout;
3. clean-up: the temporary directory is removed, whatever happened.

A path prefixed `device:` is already on the device and is used where it is (`device:~/edgelite/bundle`);
`device:deployed` is the bundle of the release `edgelite deploy` made current (DIR/current).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from edgelite.bench.errors import BenchUsageError
from edgelite.bench.options import BenchOptions, device_argv
from edgelite.bench.report import check_result
from edgelite.remote import layout
from edgelite.remote.connection import Connection
from edgelite.remote.errors import EXIT_REMOTE, RemoteError
from edgelite.remote.ssh import Remote, rq
from edgelite.remote.target import parse_target

CORE_WHEELS = ("numpy", "opencv-python-headless", "ai-edge-litert")
DEVICE_PREFIX = "device:"

# appended to layout.py's source and run by the device's python3 with DIR as its argument
PROBE_MAIN = """
import json, os, shutil, sys, tempfile
_found = Layout(sys.argv[1]).deployed()
_tmp = tempfile.mkdtemp(prefix="edgelite-bench.", dir=os.environ.get("TMPDIR") or "/tmp")
_path = shutil.which("edgelite")
_install = "deployed" if _found["edgelite"] else "path" if _path else "temporary"
print(json.dumps({"tmp": _tmp, "install": _install, "edgelite": _found["edgelite"] or _path,
                  "bundle": _found["bundle"], "python": shutil.which("python3")}))
"""


def probe_script() -> str:
    """The Python program the probe runs on the device: the layout module and a few lines that use it."""
    return Path(layout.__file__).read_text(encoding="utf-8") + PROBE_MAIN


def run_script(install: str, edgelite: str | None, tmp: str, bench_argv: list[str]) -> str:
    """The shell script that runs the bench on the device (see the module docstring)."""
    args = " ".join(bench_argv)
    q = shlex.quote
    if install in ("deployed", "path"):
        return f'cd {q(tmp)} && tmp={q(tmp)} && exec {q(edgelite or "edgelite")} bench {args}\n'
    wheels = " ".join(CORE_WHEELS)
    return f"""set -e
tmp={q(tmp)}
cd "$tmp"
PY=python3
if ! command -v python3 >/dev/null 2>&1; then
  echo "edgelite bench: the device has no python3; install it (sudo apt install python3-venv) or deploy edgelite" >&2
  exit 3
fi
if ! python3 -c 'import numpy, cv2' 2>/dev/null || \\
   ! {{ python3 -c 'import ai_edge_litert.interpreter' 2>/dev/null || python3 -c 'import tflite_runtime.interpreter' 2>/dev/null; }}; then
  echo "edgelite bench: no edgelite install on the device; pip-installing {wheels} into a temporary venv" >&2
  python3 -m venv --system-site-packages "$tmp/venv"
  "$tmp/venv/bin/pip" install -q --disable-pip-version-check {wheels} >&2
  PY="$tmp/venv/bin/python"
fi
PYTHONPATH="$tmp/src${{PYTHONPATH:+:$PYTHONPATH}}" exec "$PY" -m edgelite bench {args}
"""


def plan_paths(paths: list[str], data: str | None, pipeline: str | None, deployed_bundle: str | None = None,
               directory: str = layout.DEFAULT_DIR) -> tuple[list[str], str | None, str | None, list[tuple[Path, str]]]:
    """Device-side names for the targets, --data and --pipeline, and the (local, archive name) uploads.

    Device names are relative to the temporary directory (the bench runs there); `device:` paths are kept.
    """
    uploads: list[tuple[Path, str]] = []
    remote_targets: list[str] = []
    for i, raw in enumerate(paths):
        if raw == DEVICE_PREFIX + "deployed":
            if not deployed_bundle:
                raise BenchUsageError(f"device:deployed: the device has no current release ({directory}/"
                                      f"{layout.CURRENT}); deploy one with `edgelite deploy` (--dir {directory}) "
                                      "or give a bundle path")
            remote_targets.append(shlex.quote(deployed_bundle))
            continue
        if raw.startswith(DEVICE_PREFIX):
            remote_targets.append(rq(raw[len(DEVICE_PREFIX):]))
            continue
        p = Path(raw)
        if not p.exists():
            raise BenchUsageError(f"{p} does not exist here; to bench a path on the device write {DEVICE_PREFIX}{raw}")
        arc = f"t{i}/{p.resolve().name}"
        uploads.append((p, arc))
        remote_targets.append(shlex.quote(arc))

    def one(value: str | None, kind: str) -> str | None:
        if value is None:
            return None
        if value.startswith(DEVICE_PREFIX):
            return rq(value[len(DEVICE_PREFIX):])
        p = Path(value)
        if p.exists():
            arc = f"{kind}/{p.resolve().name}"
            uploads.append((p, arc))
            return shlex.quote(arc)
        if kind == "data":
            raise BenchUsageError(f"--data {value} does not exist here; for a path on the device write {DEVICE_PREFIX}{value}")
        return shlex.quote(value)  # a camera index, /dev/video0, a URL or picamera2: the device's own

    return remote_targets, one(data, "data"), one(pipeline, "pipeline"), uploads


def _probe(remote: Remote, directory: str) -> dict[str, str | None]:
    """Make the temporary directory on the device and find its edgelite (see the module docstring)."""
    r = remote.run(f"python3 - {rq(directory)}", input=probe_script(), timeout=120, check=False)
    if r.returncode == 127:
        raise RemoteError(f"{remote.target} has no python3; install it (sudo apt install python3-venv) or deploy "
                          "edgelite there with `edgelite deploy`", EXIT_REMOTE)
    try:
        info = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        info = {}
    if r.returncode != 0 or not info.get("tmp"):
        msg = (r.stderr.strip().splitlines() or [r.stdout.strip()[:200] or f"exit code {r.returncode}"])[-1]
        raise RemoteError(f"{remote.target}: cannot make a temporary directory for the bench: {msg}", EXIT_REMOTE)
    return info


def _cleanup(remote: Remote, tmp: str) -> None:
    try:
        remote.run(f"rm -rf -- {shlex.quote(tmp)}", timeout=120, check=False)
    except RemoteError:
        print(f"edgelite bench: could not remove {tmp} on {remote.target}", file=sys.stderr)


def bench_remote(host: str | Connection | None, paths: list[str], opts: BenchOptions | None = None, *,
                 ssh_options: list[str] | tuple[str, ...] = (), **options: Any) -> dict[str, Any]:
    """Run `edgelite bench` on a device over SSH and return its result dict (with a `remote` section).

    Options as `BenchOptions` (or keywords of the same names; `progress` defaults to off here). The
    device is `host` — a Connection (`--host`, `--identity`, ..., `--dir`) or a destination as for
    `make deploy` (user@host[:port], ssh://..., user@[::1]:2222) reached with `ssh_options` — or, when
    `host` is None, `opts.connection`.
    """
    import edgelite

    if opts is None:
        options.setdefault("progress", False)  # a bar over SSH only when asked for
    opts = dataclasses.replace(opts, **options) if opts is not None else BenchOptions(**options)
    opts.validate()
    host = host if host is not None else opts.connection
    if isinstance(host, Connection):
        conn = dataclasses.replace(host, ssh_options=(*host.ssh_options, *ssh_options))
    else:
        conn = Connection(parse_target(host or ""), ssh_options=tuple(ssh_options))
    data, pipeline = opts.data, opts.pipeline
    where = str(conn.target)
    plan_paths(list(paths), data, pipeline, "?")  # refuse bad paths before connecting
    with conn.remote() as remote:
        info = _probe(remote, conn.dir)
        tmp, install = str(info["tmp"]), str(info.get("install") or "temporary")
        try:
            targets, rdata, rpipe, uploads = plan_paths(list(paths), data, pipeline, info.get("bundle"), conn.dir)
            argv = [*targets, *device_argv(opts)]
            for flag, value in (("--data", rdata), ("--pipeline", rpipe)):
                if value:
                    argv += [flag, value]
            argv += ["--json", "-"]
            if install == "temporary":
                uploads.append((Path(edgelite.__file__).resolve().parent, "src/edgelite"))
            remote.upload_tar(uploads, tmp)
            script = run_script(install, info.get("edgelite"), tmp, argv)
            print(f"edgelite bench: running on {where} with the {install} install"
                  + (f" ({info.get('edgelite')})" if info.get("edgelite") else ""), file=sys.stderr)
            p = remote.run("sh -c " + shlex.quote(script), timeout=None, check=False, capture_stderr=False)
            try:
                result = json.loads(p.stdout)
                check_result(result, f"the output of edgelite bench on {where}")
            except (json.JSONDecodeError, BenchUsageError):
                raise RemoteError(f"edgelite bench on {where} failed (exit code {p.returncode}); its messages are "
                                  "above", EXIT_REMOTE) from None
        finally:
            _cleanup(remote, tmp)

    # device-side temporary paths -> the local names the user typed
    back = {f"{tmp}/{arc}": str(local) for local, arc in uploads}
    back.update({arc: str(local) for local, arc in uploads})

    def local(p: str | None) -> str | None:
        if not p:
            return p
        for k, v in back.items():
            if p == k or p.startswith(k + "/"):
                return v + p[len(k):]
        return p

    for t in result.get("targets", []):
        t["path"] = local(t.get("path"))
    for r in result.get("rows", []):
        r["target"], r["file"] = local(r.get("target")), local(r.get("file"))
        if r.get("pipeline"):
            r["pipeline"]["source"] = local(r["pipeline"].get("source"))
    s = result.get("settings", {})
    s["data"], s["pipeline"] = data, pipeline
    result["remote"] = {"host": where, "install": install, "edgelite": info.get("edgelite"),
                        "python": info.get("python"), "tmp": tmp}
    return result
