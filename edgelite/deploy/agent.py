"""The device side of `edgelite deploy`: one standard-library script, pushed to DIR/agent.py by every deploy.

It runs on the device with the system `python3` (before any venv exists) and owns everything that
must stay true when the workstation goes away mid-deploy:

* bundles are verified (sha256 of every file against the manifest) before they are accepted;
* `current` is only ever switched atomically (`ln -sfn` + `mv -T`, done here as symlink + rename);
* the switch, the (re)start, the health check and the rollback run as ONE detached transaction
  (`commit`), so killing the workstation's deploy at any step leaves either the previous release
  serving or the new one verified healthy — never a half-switched device;
* without systemd (containers, the Pi emulator) a small supervisor replaces it: Restart=on-failure
  with a start limit, the sd_notify protocol (READY=1, WATCHDOG=1, STATUS=) over a NOTIFY_SOCKET it
  owns, WatchdogSec, a pidfile and a size-rotated log.

Layout under DIR (default ~/edgelite)::

    agent.py                 this file
    bundles/<id>/            verified bundles; <id> = sha256 of the manifest (16 hex)
    bundles/.incoming/<id>/  where the workstation pushes before `accept` verifies and renames
    wheels/                  the edgelite wheel(s) and, with --offline, every dependency wheel
    venvs/<env>/             `python3 -m venv --system-site-packages` + edgelite; `.ready` when complete
    media/                   --source files pushed from the workstation
    releases/<rid>/          release.json + run (the service's ExecStart); <rid>.failed when unhealthy
    current -> releases/<rid>
    edgelite.service         the systemd unit (written even where there is no systemd)
    service.json             how the service is run here: systemd | systemd-user | supervisor | none
    run/                     supervisor.pid, state.json, notify socket, commit-<rid>.{log,json}
    log/edgelite.log         service output under the supervisor (systemd: journald)
    log/deploys.log          one line per switch

Usage (the workstation calls these over SSH): ``python3 agent.py --dir DIR COMMAND ...``; see `main()`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

MANIFEST = "edgelite.json"
KEEP = 3  # releases kept besides the current one
RESTART_SEC = 2.0  # Restart= delay
START_LIMIT_BURST, START_LIMIT_INTERVAL = 5, 60.0
WATCHDOG_SEC = 30
TIMEOUT_START_SEC = 300  # model load on a Pi Zero 2 / under qemu
TIMEOUT_STOP_SEC = 10
LOG_MAX_BYTES = 5 << 20

EXIT_CHECKSUM = 4
EXIT_SMOKE = 5
EXIT_UNHEALTHY = 6


class AgentError(Exception):
    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


# ------------------------------------------------------------------------------------------ layout
class Layout:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.expanduser(str(root))).absolute()
        self.agent = self.root / "agent.py"
        self.bundles = self.root / "bundles"
        self.incoming = self.bundles / ".incoming"
        self.wheels = self.root / "wheels"
        self.venvs = self.root / "venvs"
        self.media = self.root / "media"
        self.releases = self.root / "releases"
        self.current = self.root / "current"
        self.unit_file = self.root / "edgelite.service"
        self.service_json = self.root / "service.json"
        self.run = self.root / "run"
        self.logs = self.root / "log"
        self.log = self.logs / "edgelite.log"
        self.deploys_log = self.logs / "deploys.log"
        self.supervisor_pid = self.run / "supervisor.pid"
        self.state = self.run / "state.json"
        self.lock = self.root / ".lock"

    def ensure(self) -> None:
        for d in (self.root, self.bundles, self.incoming, self.wheels, self.venvs, self.media, self.releases,
                  self.run, self.logs):
            d.mkdir(parents=True, exist_ok=True)

    def current_rid(self) -> str | None:
        try:
            return Path(os.readlink(self.current)).name
        except OSError:
            return None

    def release(self, rid: str) -> dict:
        try:
            return json.loads((self.releases / rid / "release.json").read_text())
        except (OSError, ValueError):
            raise AgentError(f"no release {rid} in {self.releases}") from None

    def release_ids(self) -> list[str]:
        """Good (not failed) releases, oldest first (ids start with a UTC timestamp)."""
        if not self.releases.is_dir():
            return []
        return sorted(p.name for p in self.releases.iterdir()
                      if p.is_dir() and not p.name.endswith(".failed") and (p / "release.json").exists())

    def service(self) -> dict:
        try:
            return json.loads(self.service_json.read_text())
        except (OSError, ValueError):
            return {"mode": "supervisor", "unit": "edgelite"}

    @contextlib.contextmanager
    def locked(self):
        """One switch at a time on this device (released by the kernel if the holder dies)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say("another deploy or rollback is switching this device; waiting for it")
                fcntl.flock(f, fcntl.LOCK_EX)
            yield


def say(msg: str) -> None:
    print(msg, flush=True)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_json(path: Path, obj) -> None:
    """Atomically (temp file + rename): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def atomic_symlink(target: str, link: Path) -> None:
    """`ln -sfn target link.tmp && mv -T link.tmp link`: readers see the old or the new target, never none."""
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)  # rename(2) over the old symlink: atomic


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


# ----------------------------------------------------------------------------------------- bundles
def verify_bundle(root: Path) -> list[str]:
    """Problems of the bundle at `root` (empty = every file matches the manifest's size and sha256)."""
    mpath = root / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except OSError:
        return [f"{MANIFEST} is missing"]
    except ValueError as e:
        return [f"{MANIFEST} is not valid JSON ({e})"]
    problems = []
    files = [(m.get("path"), m.get("sha256"), m.get("bytes")) for m in manifest.get("models", [])
             if m.get("status", "ok") == "ok" and m.get("path")]
    held = (manifest.get("info") or {}).get("heldout")
    if isinstance(held, dict) and held.get("path"):
        files.append((held["path"], held.get("sha256"), None))
    if not files:
        problems.append("the manifest lists no model file")
    for rel, digest, size in files:
        p = root / rel
        if not p.is_file():
            problems.append(f"{rel} is missing")
        elif size is not None and p.stat().st_size != size:
            problems.append(f"{rel} is {p.stat().st_size} bytes, the manifest says {size}")
        elif not digest:
            problems.append(f"{rel} has no sha256 in the manifest")
        elif sha256_file(p) != digest:
            problems.append(f"{rel} fails its sha256 check (manifest {digest[:12]}…)")
    return problems


def cmd_verify(lay: Layout, a) -> int:
    problems = verify_bundle(Path(a.path))
    print(json.dumps({"ok": not problems, "problems": problems}))
    return EXIT_CHECKSUM if problems else 0


def cmd_prepare_bundle(lay: Layout, a) -> int:
    """Is bundles/<id> already here and intact? A damaged copy is copied to .incoming for the push to repair."""
    lay.ensure()
    final, inc = lay.bundles / a.id, lay.incoming / a.id
    if final.is_dir():
        problems = verify_bundle(final)
        if not problems:
            shutil.rmtree(inc, ignore_errors=True)
            print(json.dumps({"present": True}))
            return 0
        shutil.rmtree(inc, ignore_errors=True)
        shutil.copytree(final, inc, symlinks=True)  # rsync then sends only what differs
        print(json.dumps({"present": False, "damaged": problems}))
        return 0
    inc.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"present": False}))
    return 0


def cmd_accept_bundle(lay: Layout, a) -> int:
    """Verify .incoming/<id> on the device and move it to bundles/<id> (renames: all or nothing)."""
    inc, final = lay.incoming / a.id, lay.bundles / a.id
    problems = verify_bundle(inc)
    if problems:
        print(json.dumps({"ok": False, "problems": problems}))
        return EXIT_CHECKSUM
    if final.exists():
        if not verify_bundle(final):
            shutil.rmtree(inc)
            print(json.dumps({"ok": True}))
            return 0
        old = lay.incoming / f"{a.id}.damaged"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)  # a damaged copy in use: swap in the repaired one
        inc.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        inc.rename(final)
    print(json.dumps({"ok": True}))
    return 0


# ------------------------------------------------------------------------------------------- venvs
def cmd_venv(lay: Layout, a) -> int:
    """Create venvs/<env> with --system-site-packages (apt's picamera2 stays visible) and install edgelite."""
    lay.ensure()
    # A deploy killed on the workstation can leave its agent still building this venv on the device
    # (no tty: nothing tells it). One builder per venv: wait for it, then reuse what it finished.
    with open(lay.run / f"venv-{a.env}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"venv {a.env} is being built by an earlier deploy; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_venv(lay, a)


def _build_venv(lay: Layout, a) -> int:
    v = lay.venvs / a.env
    ready = v / ".ready"
    if ready.exists():
        print(json.dumps({"reused": True, **read_json(ready, {})}))
        return 0
    shutil.rmtree(v, ignore_errors=True)
    t0 = time.monotonic()
    say(f"creating {v}")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(v)], check=True,
                   stdout=sys.stderr)
    cmd = [str(v / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
           "--progress-bar", "off", "--no-cache-dir"]
    if a.offline:
        cmd += ["--no-index", "--find-links", str(a.find_links)]
    elif a.find_links:
        cmd += ["--find-links", str(a.find_links)]
    if a.constraints:
        cmd += ["-c", str(a.constraints)]
    cmd.append(str(a.wheel))
    say("$ " + " ".join(shlex.quote(c) for c in cmd))
    r = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
    if r.returncode != 0:
        shutil.rmtree(v, ignore_errors=True)
        raise AgentError(f"pip install failed (exit {r.returncode}); see the lines above", r.returncode)
    probe = ("import json, importlib.metadata as md\nout = {}\n"
             "for n in ('edgelite', 'numpy', 'opencv-python-headless', 'ai-edge-litert'):\n"
             "    try:\n        out[n] = md.version(n)\n    except md.PackageNotFoundError:\n        pass\n"
             "print(json.dumps(out))")
    out = subprocess.run([str(v / "bin" / "python"), "-c", probe], capture_output=True, text=True)
    versions = json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else {}
    info = {"versions": versions, "seconds": round(time.monotonic() - t0, 1), "created": now_iso()}
    write_json(ready, info)
    print(json.dumps({"reused": False, **info}))
    return 0


# ------------------------------------------------------------------------------------------- smoke
def write_ppm(path: Path, width: int = 64, height: int = 48) -> None:
    """A mid-grey frame OpenCV reads without any library on our side (binary PPM)."""
    path.write_bytes(b"P6\n%d %d\n255\n" % (width, height) + bytes([128]) * (width * height * 3))


def cmd_smoke(lay: Layout, a) -> int:
    """One inference with the new bundle through the very command the service runs (`edgelite run`)."""
    py = lay.venvs / a.env / "bin" / "python"
    bundle = lay.bundles / a.bundle
    with tempfile.TemporaryDirectory(prefix="edgelite-smoke-") as tmp:
        write_ppm(Path(tmp) / "frame.ppm")
        cmd = [str(py), "-m", "edgelite", "run", str(bundle), "--source", tmp, "--max-frames", "1",
               "--json", "-", "--print-every", "0", "-q"]
        if a.format:
            cmd += ["--format", a.format]
        t0 = time.monotonic()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            print(json.dumps({"ok": False, "error": f"no result within {a.timeout} s"}))
            return EXIT_SMOKE
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        err = [ln for ln in r.stderr.strip().splitlines() if ln.strip()][-3:]
        print(json.dumps({"ok": False, "exit_code": r.returncode, "error": " / ".join(err) or "no result"}))
        return EXIT_SMOKE
    result = json.loads(lines[-1])
    print(json.dumps({"ok": True, "seconds": round(time.monotonic() - t0, 2), "label": result.get("label"),
                      "score": result.get("score"), "inference_ms": result.get("timings_ms", {}).get("inference")}))
    return 0


# ---------------------------------------------------------------------------------------- releases
RUN_TEMPLATE = """#!/bin/sh
# edgelite release {rid} ({bundle}), started by the {unit} unit or the agent's supervisor.
# Generated by `edgelite deploy`; `edgelite deploy --status` shows what is live.
cd {cwd} || exit 1
# systemd sets WATCHDOG_PID; the supervisor cannot know the pid before this shell exists, and exec keeps it
if [ -n "${{WATCHDOG_USEC:-}}" ] && [ -z "${{WATCHDOG_PID:-}}" ]; then export WATCHDOG_PID=$$; fi
export PYTHONUNBUFFERED=1
{env}exec {argv}
"""


def split_token(args: list[str]) -> tuple[list[str], str | None]:
    """`--token T` / `--token=T` taken out of the `edgelite run` arguments: the run script exports it as
    EDGELITE_TOKEN instead, so it shows neither in `ps` nor in release.json."""
    out: list[str] = []
    token = None
    i = 0
    while i < len(args):
        if args[i] == "--token" and i + 1 < len(args):
            token = args[i + 1]
            i += 2
            continue
        if args[i].startswith("--token="):
            token = args[i].split("=", 1)[1]
        else:
            out.append(args[i])
        i += 1
    return out, token


def run_argv(lay: Layout, rel: dict) -> list[str]:
    argv = [str(lay.venvs / rel["venv"] / "bin" / "python"), "-m", "edgelite", "run", str(lay.bundles / rel["bundle"]),
            "--source", rel["source"], "--http", rel["http"], "--print-every", str(rel.get("print_every", 30))]
    if rel.get("format"):
        argv += ["--format", rel["format"]]
    if rel.get("source_is_file"):
        argv += ["--loop", "--realtime"]  # a clip stands in for a camera: endless, at its frame rate
    argv += list(rel.get("run_args") or [])
    return argv


def cmd_release(lay: Layout, a) -> int:
    """Write releases/<rid>/ (release.json + run) for a verified bundle and a ready venv; print <rid>."""
    lay.ensure()
    if not (lay.bundles / a.bundle).is_dir():
        raise AgentError(f"bundle {a.bundle} is not on the device")
    if not (lay.venvs / a.env / ".ready").exists():
        raise AgentError(f"venv {a.env} is not ready on the device")
    base = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + a.bundle[:8]
    rid, n = base, 1
    while (lay.releases / rid).exists() or (lay.releases / f"{rid}.failed").exists():
        n += 1
        rid = f"{base}.{n}"
    run_args, token = split_token(shlex.split(a.run_args or ""))
    rel = {"id": rid, "bundle": a.bundle, "venv": a.env, "source": a.source, "source_is_file": a.source_is_file,
           "http": a.http, "format": a.format, "print_every": a.print_every, "run_args": run_args,
           "token": token is not None, "created": now_iso(), "meta": json.loads(a.meta or "{}")}
    tmp = lay.releases / f".{rid}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_json(tmp / "release.json", rel)
    run = tmp / "run"
    svc = lay.service()
    env = f"export EDGELITE_TOKEN={shlex.quote(token)}\n" if token is not None else ""
    run.touch(mode=0o700)  # only its owner (who runs it) may read a token in it
    run.chmod(0o700 if token is not None else 0o755)
    run.write_text(RUN_TEMPLATE.format(rid=rid, bundle=a.bundle, unit=svc.get("unit", "edgelite"),
                                       cwd=shlex.quote(str(lay.root)), env=env,
                                       argv=" ".join(shlex.quote(x) for x in run_argv(lay, rel))))
    tmp.rename(lay.releases / rid)
    print(rid)
    return 0


# ----------------------------------------------------------------------------------------- service
UNIT_TEMPLATE = """[Unit]
Description=edgelite camera classifier ({root})
Documentation=https://pypi.org/project/edgelite/
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec={limit_interval}
StartLimitBurst={limit_burst}

[Service]
Type=notify
NotifyAccess=main
{user_lines}WorkingDirectory={root}
ExecStart={root}/current/run
Restart=on-failure
RestartSec={restart_sec}
WatchdogSec={watchdog}
TimeoutStartSec={timeout_start}
TimeoutStopSec={timeout_stop}
StandardOutput=journal
StandardError=journal
SyslogIdentifier={unit}
NoNewPrivileges=yes

[Install]
WantedBy={wanted_by}
"""


def render_unit(root: str, user: str | None, unit: str = "edgelite") -> str:
    """The systemd unit: Type=notify + WatchdogSec (edgelite run speaks sd_notify), Restart=on-failure,
    the deploy user (never root; `user=None` for a `systemctl --user` unit), journald logging."""
    user_lines = f"User={user}\nSupplementaryGroups=video\n" if user else ""
    return UNIT_TEMPLATE.format(root=root, user_lines=user_lines, unit=unit, restart_sec=int(RESTART_SEC),
                                watchdog=WATCHDOG_SEC, timeout_start=TIMEOUT_START_SEC, timeout_stop=TIMEOUT_STOP_SEC,
                                limit_interval=int(START_LIMIT_INTERVAL), limit_burst=START_LIMIT_BURST,
                                wanted_by="multi-user.target" if user else "default.target")


def verify_unit(path: Path) -> str | None:
    """`systemd-analyze verify` findings, or None when it is clean or not installed."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        return None
    r = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=60)
    # it also complains about unrelated units on the system; keep the lines about this file
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if path.name in ln or str(path) in ln]
    return "\n".join(lines) or (None if r.returncode == 0 else (r.stderr.strip() or f"exit {r.returncode}"))


def cmd_configure(lay: Layout, a) -> int:
    """Record how the service runs on this device and write the unit file (checked when systemd-analyze exists)."""
    lay.ensure()
    old = read_json(lay.service_json)
    if old and old.get("mode") != a.mode:
        service_stop(lay, old)
    svc = {"mode": a.mode, "unit": a.unit, "user": a.user}
    write_json(lay.service_json, svc)
    lay.unit_file.write_text(render_unit(str(lay.root), a.user if a.mode != "systemd-user" else None, a.unit))
    print(json.dumps({"unit": str(lay.unit_file), **svc}))
    return 0


def check_unit(lay: Layout, svc: dict) -> dict:
    """`systemd-analyze verify` of the unit as it will be installed (needs `current/run` to exist)."""
    if not shutil.which("systemd-analyze"):
        return {"verified": False, "findings": None}
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / f"{svc.get('unit', 'edgelite')}.service"
        shutil.copyfile(lay.unit_file, named)
        return {"verified": True, "findings": verify_unit(named)}


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


def _systemctl(svc: dict) -> list[str]:
    return ["systemctl", "--user"] if svc["mode"] == "systemd-user" else _sudo() + ["systemctl"]


def service_start(lay: Layout, svc: dict) -> None:
    mode, unit = svc["mode"], svc["unit"]
    if mode == "none":
        return
    if mode == "supervisor":
        supervisor_stop(lay)
        lay.state.unlink(missing_ok=True)
        logf = open(lay.log, "ab")
        subprocess.Popen([sys.executable, str(lay.agent), "--dir", str(lay.root), "supervise"],
                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
                         close_fds=True, cwd=str(lay.root))
        logf.close()
        for _ in range(100):  # the pidfile is its first act
            if _supervisor_pid(lay):
                return
            time.sleep(0.05)
        raise AgentError("the supervisor did not start; see `edgelite deploy --logs`")
    if mode == "systemd":
        dest = f"/etc/systemd/system/{unit}.service"
        _run(_sudo() + ["install", "-m", "644", str(lay.unit_file), dest])
    else:
        d = Path.home() / ".config" / "systemd" / "user"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lay.unit_file, d / f"{unit}.service")
        subprocess.run(["loginctl", "enable-linger"], capture_output=True)  # start at boot, not at login
    sc = _systemctl(svc)
    _run(sc + ["daemon-reload"])
    _run(sc + ["enable", "--quiet", f"{unit}.service"])
    _run(sc + ["reset-failed", f"{unit}.service"], check=False)
    _run(sc + ["restart", "--no-block", f"{unit}.service"])


def service_stop(lay: Layout, svc: dict) -> None:
    if svc.get("mode") == "supervisor":
        supervisor_stop(lay)
    elif svc.get("mode") in ("systemd", "systemd-user"):
        _run(_systemctl(svc) + ["stop", f"{svc['unit']}.service"], check=False)


def service_remove(lay: Layout, svc: dict) -> None:
    service_stop(lay, svc)
    if svc.get("mode") in ("systemd", "systemd-user"):
        sc = _systemctl(svc)
        _run(sc + ["disable", "--quiet", f"{svc['unit']}.service"], check=False)
        if svc["mode"] == "systemd":
            _run(_sudo() + ["rm", "-f", f"/etc/systemd/system/{svc['unit']}.service"], check=False)
        else:
            (Path.home() / ".config" / "systemd" / "user" / f"{svc['unit']}.service").unlink(missing_ok=True)
        _run(sc + ["daemon-reload"], check=False)


def service_state(lay: Layout, svc: dict) -> dict:
    """{active, pid, restarts, exits: [{code, at}], state, status} — the same shape for every mode."""
    if svc.get("mode") == "supervisor":
        st = read_json(lay.state, {}) or {}
        pid = _supervisor_pid(lay)
        st["supervisor_alive"] = bool(pid)
        st["active"] = bool(pid) and st.get("state") in ("starting", "running")
        return st
    if svc.get("mode") in ("systemd", "systemd-user"):
        r = subprocess.run(_systemctl(svc) + ["show", f"{svc['unit']}.service", "-p",
                                              "ActiveState,SubState,MainPID,NRestarts,ExecMainStatus,StatusText"],
                           capture_output=True, text=True)
        props = dict(ln.split("=", 1) for ln in r.stdout.splitlines() if "=" in ln)
        exits = []
        if props.get("NRestarts", "0") not in ("", "0") or props.get("ActiveState") == "failed":
            exits.append({"code": int(props.get("ExecMainStatus") or 0), "at": time.time()})
        return {"active": props.get("ActiveState") == "active", "pid": int(props.get("MainPID") or 0) or None,
                "restarts": int(props.get("NRestarts") or 0), "exits": exits,
                "state": f"{props.get('ActiveState')}/{props.get('SubState')}", "status": props.get("StatusText")}
    return {"active": False, "state": "not managed (--no-service)", "exits": []}


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AgentError(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()[:300]}")
    return r


# -------------------------------------------------------------------------------------- supervisor
def _pid_alive_with(pid: int, *needles: str) -> bool:
    """True when `pid` runs and its command line contains every needle (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return all(n in cmdline for n in needles)


def _supervisor_pid(lay: Layout) -> int | None:
    try:
        pid = int(lay.supervisor_pid.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive_with(pid, "supervise", str(lay.root)) else None


def supervisor_stop(lay: Layout, timeout: float = TIMEOUT_STOP_SEC + 5) -> None:
    pid = _supervisor_pid(lay)
    if pid is None:
        lay.supervisor_pid.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _supervisor_pid(lay):
        time.sleep(0.1)
    if _supervisor_pid(lay):
        child = (read_json(lay.state, {}) or {}).get("pid")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if child and _pid_alive_with(child, "edgelite"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    lay.supervisor_pid.unlink(missing_ok=True)


class Supervisor:
    """What systemd does for the unit, for devices without it: Restart=on-failure with a start limit,
    Type=notify (READY=1 within TimeoutStartSec), WatchdogSec, TimeoutStopSec, a log with timestamps."""

    def __init__(self, lay: Layout):
        self.lay = lay
        self.stopping = False
        self.state: dict = {"supervisor_pid": os.getpid(), "state": "starting", "restarts": 0, "exits": [],
                            "ready": False, "pid": None}
        self.log_lock = threading.Lock()
        self.logf = open(lay.log, "a", encoding="utf-8", errors="replace")

    def log(self, line: str) -> None:
        with self.log_lock:
            if self.logf.tell() > LOG_MAX_BYTES:
                self.logf.close()
                os.replace(self.lay.log, self.lay.log.with_suffix(".log.1"))
                self.logf = open(self.lay.log, "a", encoding="utf-8", errors="replace")
            self.logf.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line.rstrip()}\n")
            self.logf.flush()

    def save(self) -> None:
        write_json(self.lay.state, self.state)

    def _notify_socket(self) -> tuple[socket.socket, str, str]:
        path = self.lay.run / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if len(str(path)) < 100:
            path.unlink(missing_ok=True)
            sock.bind(str(path))
            return sock, str(path), str(path)
        name = "edgelite-" + hashlib.sha256(str(self.lay.root).encode()).hexdigest()[:16]
        sock.bind("\0" + name)  # a deep DIR: sun_path holds 108 bytes, so use the abstract namespace
        return sock, "@" + name, ""

    def _pump(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.log(raw.decode("utf-8", "replace"))

    def run(self) -> int:
        lay = self.lay
        lay.supervisor_pid.write_text(f"{os.getpid()}\n")
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        sock, address, sock_path = self._notify_socket()
        sock.settimeout(0.25)
        starts: list[float] = []
        try:
            while not self.stopping:
                now = time.monotonic()
                starts = [t for t in starts if now - t < START_LIMIT_INTERVAL] + [now]
                if len(starts) > START_LIMIT_BURST:
                    self.log(f"supervisor: start limit hit ({START_LIMIT_BURST} starts in {START_LIMIT_INTERVAL:.0f} s); "
                             "giving up (like systemd's StartLimitBurst)")
                    self.state["state"] = "failed"
                    self.save()
                    return 1
                code = self._run_once(sock, address)
                if self.stopping:
                    break
                self.state["exits"].append({"code": code, "at": time.time(), "release": self.state.get("release")})
                self.state["exits"] = self.state["exits"][-20:]
                if code == 0:
                    self.log("supervisor: the service exited cleanly; not restarting (Restart=on-failure)")
                    self.state["state"] = "exited"
                    self.save()
                    return 0
                self.state.update(state="restarting", restarts=self.state["restarts"] + 1)
                self.save()
                self.log(f"supervisor: the service failed (exit {code}); restarting in {RESTART_SEC:.0f} s")
                deadline = time.monotonic() + RESTART_SEC
                while not self.stopping and time.monotonic() < deadline:
                    time.sleep(0.1)
            self.state["state"] = "stopped"
            self.save()
            return 0
        finally:
            sock.close()
            if sock_path:
                Path(sock_path).unlink(missing_ok=True)
            lay.supervisor_pid.unlink(missing_ok=True)
            self.log("supervisor: exiting")

    def _on_term(self, signum, _frame) -> None:
        self.stopping = True

    def _run_once(self, sock: socket.socket, address: str) -> int:
        lay = self.lay
        rid = lay.current_rid()
        env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC=str(WATCHDOG_SEC * 1_000_000),
                   EDGELITE_SUPERVISED="1")
        env.pop("WATCHDOG_PID", None)
        try:
            child = subprocess.Popen([str(lay.current / "run")], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=str(lay.root), close_fds=True)
        except OSError as e:
            self.log(f"supervisor: cannot start {lay.current / 'run'}: {e}")
            return 203  # systemd's EXEC status
        self.state.update(pid=child.pid, release=rid, ready=False, status=None, state="starting",
                          started_at=time.time())
        self.save()
        self.log(f"supervisor: started release {rid} (pid {child.pid})")
        pump = threading.Thread(target=self._pump, args=(child.stdout,), daemon=True)
        pump.start()
        t_start = last_ping = time.monotonic()
        killed_for, aborted_at = None, float("inf")
        while True:
            code = child.poll()
            if code is not None:
                break
            if self.stopping and killed_for is None:
                killed_for = "stop"
                self._terminate(child)
                continue
            try:
                data = sock.recv(4096)
            except TimeoutError:
                data = b""
            now = time.monotonic()
            if data:
                fields = dict(ln.split("=", 1) for ln in data.decode(errors="replace").splitlines() if "=" in ln)
                if fields.get("READY") == "1" and not self.state["ready"]:
                    self.state.update(ready=True, state="running")
                    self.log("supervisor: READY" + (f" ({fields['STATUS']})" if fields.get("STATUS") else ""))
                    last_ping = now
                if fields.get("WATCHDOG") == "1":
                    last_ping = now
                if "STATUS" in fields:
                    self.state["status"] = fields["STATUS"]
                if fields.get("STOPPING") == "1":
                    self.state["state"] = "stopping"
                self.save()
            if killed_for:
                if killed_for == "watchdog" and now - aborted_at > TIMEOUT_STOP_SEC:
                    self.log(f"supervisor: pid {child.pid} did not end on SIGABRT; killing it")
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
                    aborted_at = float("inf")
                continue
            if not self.state["ready"] and now - t_start > TIMEOUT_START_SEC:
                killed_for = "start timeout"
                self.log(f"supervisor: no READY=1 within {TIMEOUT_START_SEC} s; stopping pid {child.pid}")
                self._terminate(child)
            elif self.state["ready"] and now - last_ping > WATCHDOG_SEC:
                killed_for, aborted_at = "watchdog", now
                self.log(f"supervisor: watchdog timeout ({WATCHDOG_SEC} s without WATCHDOG=1); aborting pid {child.pid}")
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGABRT)
        pump.join(timeout=2)
        code = child.returncode
        if killed_for in ("start timeout", "watchdog") and code == 0:
            code = 1
        self.log(f"supervisor: pid {child.pid} exited with {_describe_exit(code)}")
        return code if code >= 0 else 128 - code

    def _terminate(self, child: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            child.wait(TIMEOUT_STOP_SEC)
        except subprocess.TimeoutExpired:
            self.log(f"supervisor: pid {child.pid} ignored SIGTERM for {TIMEOUT_STOP_SEC} s; killing it")
            child.kill()


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def cmd_supervise(lay: Layout, a) -> int:
    return Supervisor(lay).run()


# ------------------------------------------------------------------------------------------ health
def health_url(http: str) -> str:
    """http://HOST:PORT/healthz for an `--http` value; a wildcard bind is probed on the loopback."""
    v = http.strip()
    host, port = "127.0.0.1", v
    if v.startswith("["):
        host, port = v[1:v.index("]")], v[v.index("]") + 2:]
    elif ":" in v:
        host, port = v.rsplit(":", 1)
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "localhost": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"


def probe_health(url: str, timeout: float = 3.0) -> tuple[int | None, dict | str]:
    """(HTTP status, JSON body) of /healthz, or (None, why it did not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read().decode())
        except ValueError:
            return e.code, f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        return None, f"not answering ({getattr(e, 'reason', e)})"


def wait_healthy(lay: Layout, svc: dict, rel: dict, timeout: float) -> tuple[bool, str, dict | None]:
    """Poll /healthz until it reports frames (healthy), the service exits (unhealthy) or `timeout` passes."""
    url = health_url(rel["http"])
    t0 = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - t0 < timeout:
        st = service_state(lay, svc)
        if st.get("exits"):
            e = st["exits"][-1]
            errors = [ln for ln in log_tail(lay, svc, 15) if "error" in ln.lower()]
            detail = f": {errors[-1].split(' ', 1)[-1]}" if errors else ""
            return False, (f"the service exited with code {e.get('code')} {time.monotonic() - t0:.1f} s after the start"
                           f"{detail}"), None
        if svc["mode"] == "supervisor" and not st.get("supervisor_alive"):
            return False, "the supervisor is gone", None
        code, body = probe_health(url)
        if isinstance(body, dict) and body.get("source") not in (None, rel["source"]):
            return False, f"{url} is served by another process (source {body.get('source')!r})", None
        if code == 200 and isinstance(body, dict) and (body.get("frames") or 0) >= 1:
            return True, f"healthy after {time.monotonic() - t0:.1f} s", body
        if isinstance(body, dict):
            last = f"HTTP {code}, status {body.get('status')!r}, {body.get('frames')} frames"
        else:
            last = str(body)
        time.sleep(0.5)
    return False, f"no healthy /healthz at {url} within {timeout:.0f} s (last: {last})", None


def log_tail(lay: Layout, svc: dict, n: int = 20) -> list[str]:
    if svc.get("mode") in ("systemd", "systemd-user"):
        cmd = ["journalctl", "--user"] if svc["mode"] == "systemd-user" else ["journalctl"]
        r = subprocess.run(cmd + ["-u", f"{svc['unit']}.service", "-n", str(n), "--no-pager", "-o", "short-iso"],
                           capture_output=True, text=True)
        return r.stdout.splitlines()[-n:]
    try:
        with open(lay.log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 64 * 1024))
            return f.read().decode("utf-8", "replace").splitlines()[-n:]
    except OSError:
        return []


# ------------------------------------------------------------------------------------------ commit
def _history(lay: Layout, line: str) -> None:
    lay.logs.mkdir(parents=True, exist_ok=True)
    with open(lay.deploys_log, "a") as f:
        f.write(f"{now_iso()} {line}\n")


def _switch(lay: Layout, rid: str | None) -> None:
    if rid is None:
        with contextlib.suppress(FileNotFoundError):
            lay.current.unlink()
    else:
        atomic_symlink(f"releases/{rid}", lay.current)


def commit(lay: Layout, rid: str, health_timeout: float, no_service: bool = False) -> dict:
    """Make `rid` current and prove it healthy; otherwise go back to what was serving. Returns the result."""
    with lay.locked():
        svc = lay.service()
        rel = lay.release(rid)
        prev = lay.current_rid()
        say(f"switch: current -> releases/{rid} (was {prev or 'nothing'})")
        _switch(lay, rid)
        _history(lay, f"switch {prev or '-'} -> {rid}")
        unit = check_unit(lay, svc)
        if unit["findings"]:
            say(f"systemd-analyze verify {svc.get('unit', 'edgelite')}.service: {unit['findings']}")
        if no_service or svc["mode"] == "none":
            return {"ok": True, "release": rid, "previous": prev, "health": None, "unit": unit,
                    "note": "--no-service: not started"}
        say(f"restart: {svc['mode']} service {svc['unit']}")
        try:
            service_start(lay, svc)
            ok, why, body = wait_healthy(lay, svc, rel, health_timeout)
        except AgentError as e:  # e.g. sudo refused: the switch must still be undone
            ok, why, body = False, str(e), None
        if ok:
            say(f"health: {why}")
            _history(lay, f"healthy {rid}")
            gc(lay, KEEP)
            return {"ok": True, "release": rid, "previous": prev, "health": body, "why": why, "unit": unit}
        say(f"health: {why}")
        tail = log_tail(lay, svc, 25)
        result = {"ok": False, "release": rid, "previous": prev, "why": why, "log_tail": tail, "unit": unit}
        if prev and prev != rid and (lay.releases / prev).is_dir():
            say(f"rollback: current -> releases/{prev}")
            _switch(lay, prev)
            _history(lay, f"unhealthy {rid}: {why}; back to {prev}")
            try:
                service_start(lay, svc)
                ok2, why2, body2 = wait_healthy(lay, svc, lay.release(prev), health_timeout)
            except AgentError as e:
                ok2, why2, body2 = False, str(e), None
            say(f"rollback health: {why2}")
            result.update(rolled_back_to=prev, previous_healthy=ok2, previous_health=body2)
        else:
            say("rollback: nothing to go back to; stopping the service")
            service_stop(lay, svc)
            _switch(lay, None)
            _history(lay, f"unhealthy {rid}: {why}; nothing to go back to")
            result.update(rolled_back_to=None)
        if lay.current_rid() != rid:
            (lay.releases / rid).rename(lay.releases / f"{rid}.failed")
        return result


def cmd_commit(lay: Layout, a) -> int:
    out = lay.run / f"commit-{a.rid}.json"
    try:
        result = commit(lay, a.rid, a.health_timeout, a.no_service)
    except AgentError as e:
        result = {"ok": False, "release": a.rid, "why": str(e)}
    except Exception as e:  # the workstation is waiting for a result file: always write one
        result = {"ok": False, "release": a.rid, "why": f"{type(e).__name__}: {e}"}
    write_json(out, result)
    return 0 if result["ok"] else EXIT_UNHEALTHY


def cmd_commit_bg(lay: Layout, a) -> int:
    """Start `commit` detached from this SSH session: it finishes even if the workstation is killed."""
    lay.ensure()
    for suffix in ("json", "log"):
        (lay.run / f"commit-{a.rid}.{suffix}").unlink(missing_ok=True)
    logf = open(lay.run / f"commit-{a.rid}.log", "ab")
    p = subprocess.Popen([sys.executable, str(lay.agent), "--dir", str(lay.root), "commit", a.rid,
                          "--health-timeout", str(a.health_timeout)] + (["--no-service"] if a.no_service else []),
                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True, close_fds=True)
    logf.close()
    (lay.run / f"commit-{a.rid}.pid").write_text(f"{p.pid}\n")
    print(json.dumps({"pid": p.pid}))
    return 0


def cmd_wait(lay: Layout, a) -> int:
    """Stream commit-<rid>.log until its result appears; print the result as the last line."""
    logp, resp = lay.run / f"commit-{a.rid}.log", lay.run / f"commit-{a.rid}.json"
    try:
        pid = int((lay.run / f"commit-{a.rid}.pid").read_text())
    except (OSError, ValueError):
        pid = None
    pos, t0 = 0, time.monotonic()
    while True:
        done = resp.exists()
        with contextlib.suppress(OSError), open(logp, "rb") as f:
            f.seek(pos)
            chunk = f.read()
            pos += len(chunk)
            if chunk:
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
        if done:
            result = read_json(resp, {"ok": False, "why": "unreadable result"})
            print("RESULT " + json.dumps(result), flush=True)
            return 0 if result.get("ok") else EXIT_UNHEALTHY
        if pid and not _pid_alive_with(pid, "commit", a.rid) and not resp.exists():
            print("RESULT " + json.dumps({"ok": False, "why": "the device-side commit process died"}), flush=True)
            return 1
        if time.monotonic() - t0 > a.timeout:
            print("RESULT " + json.dumps({"ok": False, "why": f"no result within {a.timeout:.0f} s"}), flush=True)
            return 1
        time.sleep(0.2)


# --------------------------------------------------------------------------------- status and more
def gc(lay: Layout, keep: int) -> list[str]:
    """Keep the current release and the `keep` newest others; drop what no kept release uses."""
    cur = lay.current_rid()
    good = lay.release_ids()
    kept = set(good[-keep:]) | ({cur} if cur else set())
    removed = []
    for p in lay.releases.iterdir() if lay.releases.is_dir() else []:
        if p.name.endswith(".failed"):
            failed = sorted(q.name for q in lay.releases.iterdir() if q.name.endswith(".failed"))
            if p.name in failed[-2:]:
                continue  # keep the last failures for their logs
        elif p.name in kept or not p.is_dir() or p.name.startswith("."):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p.name)
    rels = [read_json(lay.releases / r / "release.json", {}) for r in kept]
    used_b = {r.get("bundle") for r in rels}
    used_v = {r.get("venv") for r in rels}
    used_m = {r.get("source") for r in rels}
    for d, used in ((lay.bundles, used_b), (lay.venvs, used_v)):
        for p in d.iterdir() if d.is_dir() else []:
            if not p.name.startswith(".") and p.name not in used:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(f"{d.name}/{p.name}")
    for p in lay.media.iterdir() if lay.media.is_dir() else []:
        if str(p) not in used_m:
            p.unlink()
            removed.append(f"media/{p.name}")
    return removed


def status(lay: Layout) -> dict:
    svc = lay.service()
    cur = lay.current_rid()
    out = {"dir": str(lay.root), "service": svc, "current": None, "releases": [], "health": None,
           "state": service_state(lay, svc) if lay.root.exists() else None}
    for rid in lay.release_ids():
        rel = read_json(lay.releases / rid / "release.json", {})
        out["releases"].append({"id": rid, "bundle": rel.get("bundle"), "meta": rel.get("meta"),
                                "current": rid == cur})
    if lay.releases.is_dir():
        out["failed"] = sorted(p.name[:-7] for p in lay.releases.iterdir() if p.name.endswith(".failed"))
    if cur:
        rel = read_json(lay.releases / cur / "release.json", {})
        out["current"] = rel
        code, body = probe_health(health_url(rel.get("http", "127.0.0.1:8080")))
        out["health"] = {"http": code, "body": body, "url": health_url(rel.get("http", "127.0.0.1:8080"))}
    return out


def cmd_status(lay: Layout, a) -> int:
    print(json.dumps(status(lay)))
    return 0


def cmd_logs(lay: Layout, a) -> int:
    svc = lay.service()
    if svc.get("mode") in ("systemd", "systemd-user"):
        cmd = ["journalctl", "--user"] if svc["mode"] == "systemd-user" else ["journalctl"]
        cmd += ["-u", f"{svc['unit']}.service", "-n", str(a.lines), "--no-pager"] + (["-f"] if a.follow else [])
        return subprocess.call(cmd)
    for line in log_tail(lay, svc, a.lines):
        print(line)
    sys.stdout.flush()
    if a.follow:
        with open(lay.log, "rb") as f:
            f.seek(0, 2)
            while True:
                chunk = f.read()
                if chunk:
                    sys.stdout.write(chunk.decode("utf-8", "replace"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)
    return 0


def cmd_previous(lay: Layout, a) -> int:
    """The release `--rollback` goes to: the newest good release older than the current one."""
    cur = lay.current_rid()
    older = [r for r in lay.release_ids() if cur is None or r < cur]
    print(json.dumps({"current": cur, "previous": older[-1] if older else None}))
    return 0


def cmd_uninstall(lay: Layout, a) -> int:
    if not lay.agent.exists() or not lay.releases.is_dir():
        raise AgentError(f"{lay.root} does not look like an edgelite deploy directory; not removing it")
    service_remove(lay, lay.service())
    shutil.rmtree(lay.root)
    print(json.dumps({"removed": str(lay.root)}))
    return 0


def cmd_service(lay: Layout, a) -> int:
    svc = lay.service()
    if a.action == "start":
        service_start(lay, svc)
    else:
        service_stop(lay, svc)
    print(json.dumps(service_state(lay, svc)))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="agent.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default="~/edgelite")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("verify")
    s.add_argument("path")
    s.set_defaults(func=cmd_verify)
    for name, func in (("prepare-bundle", cmd_prepare_bundle), ("accept-bundle", cmd_accept_bundle)):
        s = sub.add_parser(name)
        s.add_argument("id")
        s.set_defaults(func=func)
    s = sub.add_parser("venv")
    s.add_argument("env")
    s.add_argument("--wheel", required=True)
    s.add_argument("--find-links")
    s.add_argument("--constraints")
    s.add_argument("--offline", action="store_true")
    s.set_defaults(func=cmd_venv)
    s = sub.add_parser("smoke")
    s.add_argument("--env", required=True)
    s.add_argument("--bundle", required=True)
    s.add_argument("--format")
    s.add_argument("--timeout", type=float, default=300)
    s.set_defaults(func=cmd_smoke)
    s = sub.add_parser("configure")
    s.add_argument("--mode", choices=["systemd", "systemd-user", "supervisor", "none"], required=True)
    s.add_argument("--unit", default="edgelite")
    s.add_argument("--user", required=True)
    s.set_defaults(func=cmd_configure)
    s = sub.add_parser("release")
    s.add_argument("--bundle", required=True)
    s.add_argument("--env", required=True)
    s.add_argument("--source", required=True)
    s.add_argument("--source-is-file", action="store_true")
    s.add_argument("--http", required=True)
    s.add_argument("--format")
    s.add_argument("--print-every", type=int, default=30)
    s.add_argument("--run-args", default="")
    s.add_argument("--meta", default="{}")
    s.set_defaults(func=cmd_release)
    for name, func in (("commit", cmd_commit), ("commit-bg", cmd_commit_bg)):
        s = sub.add_parser(name)
        s.add_argument("rid")
        s.add_argument("--health-timeout", type=float, default=90)
        s.add_argument("--no-service", action="store_true")
        s.set_defaults(func=func)
    s = sub.add_parser("wait")
    s.add_argument("rid")
    s.add_argument("--timeout", type=float, default=900)
    s.set_defaults(func=cmd_wait)
    sub.add_parser("status").set_defaults(func=cmd_status)
    sub.add_parser("previous").set_defaults(func=cmd_previous)
    s = sub.add_parser("logs")
    s.add_argument("-n", "--lines", type=int, default=50)
    s.add_argument("-f", "--follow", action="store_true")
    s.set_defaults(func=cmd_logs)
    s = sub.add_parser("service")
    s.add_argument("action", choices=["start", "stop"])
    s.set_defaults(func=cmd_service)
    sub.add_parser("uninstall").set_defaults(func=cmd_uninstall)
    sub.add_parser("supervise").set_defaults(func=cmd_supervise)
    a = p.parse_args(argv)
    lay = Layout(a.dir)
    try:
        return a.func(lay, a)
    except AgentError as e:
        print(f"agent: error: {e}", file=sys.stderr)
        return e.exit_code
    except subprocess.CalledProcessError as e:
        print(f"agent: error: {' '.join(map(str, e.cmd))} failed with exit {e.returncode}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
