"""`edgelite bench --host user@host`: the same bench, run on the device over SSH, result pulled back.

Three ssh calls, all with BatchMode (keys only, never a password prompt):

1. probe: make a temporary directory on the device and find edgelite there — the deployed install
   (the venv of `~/edgelite/current`'s release, as `edgelite deploy` lays it out, or
   `~/edgelite/venv/bin/edgelite`), else `edgelite` on the PATH, else
   none ("temporary": this edgelite's pure-Python package is copied over and run with the device's
   python3, in a throwaway venv with the core wheels when python3 lacks numpy/OpenCV/LiteRT);
2. upload + run: local bundles/models (and --data, --pipeline files) go over as one tar stream, then
   `edgelite bench ... --json -` runs there; its progress bar streams to this terminal, its JSON comes
   back on stdout;
3. clean-up: the temporary directory is removed, whatever happened.

A path prefixed `device:` is already on the device and is used where it is (`device:~/edgelite/bundle`);
`device:deployed` is the bundle of the release `edgelite deploy` made current (~/edgelite/current).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from edgelite.bench.errors import BenchUsageError
from edgelite.bench.report import check_result
from edgelite.remote.target import parse_target

DEPLOYED = "$HOME/edgelite/venv/bin/edgelite"
CORE_WHEELS = ("numpy", "opencv-python-headless", "ai-edge-litert")
DEVICE_PREFIX = "device:"


class RemoteBenchError(Exception):
    """SSH to the device failed or the bench there failed (printed as one line by the CLI)."""

    exit_code = 2


def ssh_command(host: str, ssh_options: list[str] | tuple[str, ...] = (), remote: str | None = None) -> list[str]:
    """`ssh -o BatchMode=yes [-o OPT ...] [-p PORT] USER@HOST [REMOTE]` — keys only, so a missing key fails
    at once. `host` is written as for `make deploy`: user@host, user@host:port, ssh://..., user@[::1]:2222."""
    try:
        target = parse_target(host or "")
    except ValueError as e:
        raise BenchUsageError(f"--host {host!r}: {e}") from None
    cmd = ["ssh", "-o", "BatchMode=yes"]
    for opt in ssh_options:  # before our defaults: ssh keeps the first value it is given for an option
        cmd += ["-o", opt]
    cmd += ["-o", "ConnectTimeout=15"]
    if target.port:
        cmd += ["-p", str(target.port)]
    cmd.append(target.destination)
    if remote is not None:
        cmd.append(remote)
    return cmd


def remote_path(path: str, tmp_var: str = "$tmp") -> str:
    """A shell word for a device path: `~/x` expands to the remote $HOME, the rest is quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


PROBE = r"""set -e
tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgelite-bench.XXXXXX")
echo "tmp=$tmp"
rel="$HOME/edgelite/current/release.json"
venv=""; bundle=""
if [ -f "$rel" ]; then
  venv=$(sed -n 's/.*"venv": *"\([^"]*\)".*/\1/p' "$rel" | head -n 1)
  bundle=$(sed -n 's/.*"bundle": *"\([^"]*\)".*/\1/p' "$rel" | head -n 1)
fi
[ -n "$bundle" ] && [ -d "$HOME/edgelite/bundles/$bundle" ] && echo "bundle=$HOME/edgelite/bundles/$bundle"
if [ -n "$venv" ] && [ -x "$HOME/edgelite/venvs/$venv/bin/edgelite" ]; then
  echo "install=deployed"; echo "edgelite=$HOME/edgelite/venvs/$venv/bin/edgelite"
elif [ -x "$HOME/edgelite/venv/bin/edgelite" ]; then
  echo "install=deployed"; echo "edgelite=$HOME/edgelite/venv/bin/edgelite"
elif command -v edgelite >/dev/null 2>&1; then
  echo "install=path"; echo "edgelite=$(command -v edgelite)"
else
  echo "install=temporary"
fi
echo "python=$(command -v python3 || true)"
"""


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


def _probe(host: str, ssh_options) -> dict[str, str]:
    cmd = ssh_command(host, ssh_options, "sh -c " + shlex.quote(PROBE))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise RemoteBenchError("`ssh` is not installed on this machine (apt install openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise RemoteBenchError(f"ssh {host} did not answer within 120 s") from None
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
        raise RemoteBenchError(f"cannot reach {host} over ssh ({msg}); check `ssh {host} true` works without a "
                               "password (ssh-copy-id), or pass --ssh-option Port=... / IdentityFile=...")
    info = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    if not info.get("tmp"):
        raise RemoteBenchError(f"{host}: cannot make a temporary directory: {p.stdout.strip()[:200]}")
    return info


def _cleanup(host: str, ssh_options, tmp: str) -> None:
    cmd = ssh_command(host, ssh_options, "rm -rf -- " + shlex.quote(tmp))
    try:
        subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (subprocess.TimeoutExpired, OSError):
        print(f"edgelite bench: could not remove {tmp} on {host}", file=sys.stderr)


def _upload(host: str, ssh_options, tmp: str, items: list[tuple[Path, str]]) -> None:
    """Stream local files/directories to tmp/<arcname> on the device as one uncompressed tar."""
    if not items:
        return
    cmd = ssh_command(host, ssh_options, f"tar -xf - -C {shlex.quote(tmp)}")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stdin is not None

    def skip(ti: tarfile.TarInfo):
        name = Path(ti.name).name
        return None if name == "__pycache__" or name.endswith(".pyc") else ti

    try:
        with tarfile.open(fileobj=proc.stdin, mode="w|") as tar:
            for local, arc in items:
                tar.add(str(local), arcname=arc, filter=skip)
    except BrokenPipeError:
        pass
    finally:
        proc.stdin.close()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise RemoteBenchError(f"copying to {host}:{tmp} failed: {(err.strip().splitlines() or ['?'])[-1]}")


def plan_paths(paths: list[str], data: str | None, pipeline: str | None, deployed_bundle: str | None = None
               ) -> tuple[list[str], str | None, str | None, list[tuple[Path, str]]]:
    """Device-side names for the targets, --data and --pipeline, and the (local, archive name) uploads.

    Device names are relative to the temporary directory (the bench runs there); `device:` paths are kept.
    """
    uploads: list[tuple[Path, str]] = []
    remote_targets: list[str] = []
    for i, raw in enumerate(paths):
        if raw == DEVICE_PREFIX + "deployed":
            if not deployed_bundle:
                raise RemoteBenchError("device:deployed: the device has no current release (~/edgelite/current); "
                                       "deploy one with `edgelite deploy` or give a bundle path")
            remote_targets.append(shlex.quote(deployed_bundle))
            continue
        if raw.startswith(DEVICE_PREFIX):
            remote_targets.append(remote_path(raw[len(DEVICE_PREFIX):]))
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
            return remote_path(value[len(DEVICE_PREFIX):])
        p = Path(value)
        if p.exists():
            arc = f"{kind}/{p.resolve().name}"
            uploads.append((p, arc))
            return shlex.quote(arc)
        if kind == "data":
            raise BenchUsageError(f"--data {value} does not exist here; for a path on the device write {DEVICE_PREFIX}{value}")
        return shlex.quote(value)  # a camera index, /dev/video0, a URL or picamera2: the device's own

    return remote_targets, one(data, "data"), one(pipeline, "pipeline"), uploads


def bench_remote(host: str, paths: list[str], *, formats: str | None = None, threads: str | None = None,
                 runs: int = 200, warmup: int = 20, min_seconds: float = 0.0, data: str | None = None,
                 pipeline: str | None = None, isolate: bool = True, progress: bool = False,
                 ssh_options: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Run `edgelite bench` on `host` over SSH and return its result dict (with a `remote` section)."""
    import edgelite

    plan_paths(list(paths), data, pipeline, "?")  # refuse bad paths before connecting
    info = _probe(host, ssh_options)
    tmp = info["tmp"]
    try:
        targets, rdata, rpipe, uploads = plan_paths(list(paths), data, pipeline, info.get("bundle"))
    except Exception:
        _cleanup(host, ssh_options, tmp)
        raise
    argv = list(targets)
    if formats:
        argv += ["--formats", shlex.quote(str(formats))]
    if threads:
        argv += ["--threads", shlex.quote(str(threads))]
    argv += ["--runs", str(int(runs)), "--warmup", str(int(warmup)), "--min-seconds", repr(float(min_seconds))]
    if rdata:
        argv += ["--data", rdata]
    if rpipe:
        argv += ["--pipeline", rpipe]
    if not isolate:
        argv.append("--no-isolate")
    argv += ["--progress" if progress else "--no-progress", "--json", "-"]

    try:
        install = info.get("install", "temporary")
        if install == "temporary":
            uploads.append((Path(edgelite.__file__).resolve().parent, "src/edgelite"))
        _upload(host, ssh_options, tmp, uploads)
        script = run_script(install, info.get("edgelite"), tmp, argv)
        print(f"edgelite bench: running on {host} with the {install} install"
              + (f" ({info.get('edgelite')})" if info.get("edgelite") else ""), file=sys.stderr)
        p = subprocess.run(ssh_command(host, ssh_options, "sh -c " + shlex.quote(script)),
                           stdout=subprocess.PIPE, text=True)
        import json

        try:
            result = json.loads(p.stdout)
            check_result(result, f"the output of edgelite bench on {host}")
        except (json.JSONDecodeError, BenchUsageError):
            raise RemoteBenchError(f"edgelite bench on {host} failed (exit code {p.returncode}); its messages are "
                                   "above") from None
    finally:
        _cleanup(host, ssh_options, tmp)

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
    result["remote"] = {"host": host, "install": install, "edgelite": info.get("edgelite"),
                        "python": info.get("python"), "tmp": tmp}
    return result
