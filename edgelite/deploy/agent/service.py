"""How the service runs on this device: a systemd unit (system or --user), the agent's supervisor, or none.

`service.json` records the mode; every function here takes that record (`svc`) and does the same
thing in each mode: start (install the unit, restart), stop, remove, state, log tail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from edgelite.deploy.agent import supervisor as sv
from edgelite.deploy.agent.layout import AgentError, Layout, agent_argv
from edgelite.deploy.agent.unit import render_unit
from edgelite.errors import EXIT_USAGE
from edgelite.jsonfile import read_json, write_json

MODES = ("systemd", "systemd-user", "supervisor", "none")


def cmd_configure(lay: Layout, req: dict) -> dict:
    """Record how the service runs on this device and write the unit file (checked when systemd-analyze exists)."""
    mode, unit, user = req["mode"], str(req.get("unit") or "edgelite"), str(req["user"])
    if mode not in MODES:
        raise AgentError(f"mode {mode!r}: expected one of {', '.join(MODES)}", EXIT_USAGE)
    lay.ensure()
    old = read_json(lay.service_json)
    if old and old.get("mode") != mode:
        service_stop(lay, old)
    svc = {"mode": mode, "unit": unit, "user": user}
    write_json(lay.service_json, svc)
    lay.unit_file.write_text(render_unit(str(lay.root), user if mode != "systemd-user" else None, unit))
    return {"unit_file": str(lay.unit_file), **svc}


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


def _systemctl(svc: dict) -> list[str]:
    return ["systemctl", "--user"] if svc["mode"] == "systemd-user" else _sudo() + ["systemctl"]


def service_start(lay: Layout, svc: dict) -> None:
    mode, unit = svc["mode"], svc["unit"]
    if mode == "none":
        return
    if mode == "supervisor":
        sv.supervisor_stop(lay)
        lay.state.unlink(missing_ok=True)
        lay.logs.mkdir(parents=True, exist_ok=True)
        logf = open(lay.log, "ab")
        os.fchmod(logf.fileno(), 0o600)  # a log made before the agent's umask: the service's warnings are private
        subprocess.Popen(agent_argv() + ["supervise", "--dir", str(lay.root)],
                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
                         close_fds=True, cwd=str(lay.root))
        logf.close()
        for _ in range(100):  # the pidfile is its first act
            if sv.supervisor_pid(lay):
                return
            time.sleep(0.05)
        raise AgentError("the supervisor did not start; see `edgelite deploy --logs`")
    if mode == "systemd":
        _install_unit(lay.unit_file, Path(f"/etc/systemd/system/{unit}.service"))
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


def _install_unit(src: Path, dest: Path) -> None:
    """Put the unit in /etc/systemd/system so that a power cut at any moment leaves the old unit or the new
    one, never an empty file that boots without the service: unchanged, it is not rewritten at all (every
    deploy gets here); changed, it is written beside, synced, and renamed over the old one."""
    try:
        if dest.read_bytes() == src.read_bytes():
            return
    except OSError:
        pass
    new = f"{dest}.edgelite-new"
    _run(_sudo() + ["install", "-m", "644", str(src), new])
    _run(_sudo() + ["sync", new])
    _run(_sudo() + ["mv", "-f", "-T", new, str(dest)])
    _run(_sudo() + ["sync", str(dest.parent)])


def service_stop(lay: Layout, svc: dict) -> None:
    if svc.get("mode") == "supervisor":
        sv.supervisor_stop(lay)
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
        st = read_json(lay.state) or {}
        pid = sv.supervisor_pid(lay)
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



def cmd_service(lay: Layout, req: dict) -> dict:
    """Start or stop the service as configured (`action`: start | stop); reply its state."""
    svc = lay.service()
    action = req.get("action")
    if action == "start":
        service_start(lay, svc)
    elif action == "stop":
        service_stop(lay, svc)
    else:
        raise AgentError(f"service action {action!r}: expected start or stop", EXIT_USAGE)
    return {"state": service_state(lay, svc)}
