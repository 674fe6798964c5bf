"""Detached calls: any request with `"detach": true` runs in its own session, away from the SSH connection.

The job NAME's progress goes to run/NAME.log, its reply to run/NAME.json (written atomically, always:
a crash is a failure reply too) and its pid to run/NAME.pid. `wait` follows the log from an offset
and hands over the reply once it exists — the workstation polls it, as Ansible polls async tasks.
The files of the KEEP_JOBS newest finished jobs stay (to read after the fact); older ones go when a job starts.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

from edgelite.deploy.agent import HEALTH_TIMEOUT
from edgelite.deploy.agent.layout import AgentError, Layout, agent_argv, pid_alive_with
from edgelite.errors import EXIT_REMOTE, EXIT_USAGE
from edgelite.jsonfile import read_json

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
KEEP_JOBS = 20  # finished jobs whose files stay in run/: a deploy starts two or three (venv, commit, bench)


def job_name(req: dict) -> str:
    """The job's name: `commit-<release>` for a switch (rollback names its release when it runs), else
    the command and a timestamp."""
    name = req.get("job")
    if not name:
        if req.get("command") == "commit":
            name = f"commit-{req.get('release')}"
        else:
            name = f"{req.get('command')}-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns() % 10**6:06d}"
    if not _NAME.fullmatch(str(name)):
        raise AgentError(f"bad job name {name!r}", EXIT_USAGE)
    return str(name)


def follow_seconds(req: dict) -> float:
    """How long a workstation (`edgelite deploy`, the fleet role) follows this job before giving up on it:
    the job ends by its own timeouts; a switch may run two health checks (the new release, then the old)."""
    if req.get("command") == "batch":  # its steps, one after the other
        return sum(follow_seconds(s) for s in req.get("steps") or () if isinstance(s, dict))
    if req.get("command") in ("commit", "rollback"):
        return 2 * float(req.get("health_timeout", HEALTH_TIMEOUT)) + 300
    return 3600.0 if req.get("command") == "venv" else 900.0


def paths(lay: Layout, name: str):
    """run/NAME.log, .json, .pid; a name that is not a job's (`../../x`, `/etc/x`) is refused, so a request
    never reads or writes outside the run folder."""
    if not _NAME.fullmatch(str(name)):
        raise AgentError(f"bad job name {name!r}: letters, digits, '.', '_' and '-' only", EXIT_USAGE)
    return lay.run / f"{name}.log", lay.run / f"{name}.json", lay.run / f"{name}.pid"


def start(lay: Layout, req: dict) -> dict:
    """Start `req` (without "detach") as `agent job NAME` in a new session; reply {job, pid, follow_s} at once."""
    name = job_name(req)
    lay.ensure()
    prune(lay)
    log, result, pidfile = paths(lay, name)
    for p in (log, result, pidfile):
        p.unlink(missing_ok=True)
    child_req = {k: v for k, v in req.items() if k != "detach"}
    child_req.update(job=name, dir=str(lay.root))
    with open(log, "ab") as logf:
        p = subprocess.Popen(agent_argv() + ["job", name], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=logf, start_new_session=True, close_fds=True, cwd=str(lay.root))
    p.stdin.write(json.dumps(child_req).encode())
    p.stdin.close()
    pidfile.write_text(f"{p.pid}\n")
    return {"job": name, "pid": p.pid, "follow_s": follow_seconds(req)}


def prune(lay: Layout, keep: int = KEEP_JOBS) -> list[str]:
    """Remove the files of all but the `keep` newest finished jobs (a reply, a log and a pid file each; a job
    still running has no reply yet and is never touched): a device deployed to every day for years would
    otherwise collect them without end. Returns the job names removed."""
    finished = []
    for reply in lay.run.glob("*.json"):
        name = reply.name[: -len(".json")]
        log, _, pidfile = paths(lay, name) if _NAME.fullmatch(name) else (None, None, None)
        if log is None or not (log.is_file() and pidfile.is_file()):
            continue  # not a job's (state.json, ...)
        try:
            finished.append((reply.stat().st_mtime, name))
        except OSError:
            continue
    finished.sort()
    gone = [name for _, name in finished[:-keep]] if len(finished) > keep else []
    for name in gone:
        for p in paths(lay, name):
            p.unlink(missing_ok=True)
    return gone


def cmd_wait(lay: Layout, req: dict) -> dict:
    """New log lines of job `job` after byte `offset`, waiting up to `timeout` s for some or for the end."""
    name = str(req["job"])
    log, result, pidfile = paths(lay, name)
    offset, timeout = int(req.get("offset", 0)), float(req.get("timeout", 5))
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        pid = None
    t0 = time.monotonic()
    lines: list[str] = []
    while True:
        done = result.exists()  # before reading: the log is complete once the reply is there
        try:
            with open(log, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except OSError:
            chunk = b""
        complete = chunk if done else chunk[:chunk.rfind(b"\n") + 1]  # whole lines only, until the end
        offset += len(complete)
        lines += complete.decode("utf-8", "replace").splitlines()
        if done:
            reply = read_json(result) or {"ok": False, "error": f"job {name} left an unreadable reply",
                                          "exit_code": EXIT_REMOTE}
            return {"done": True, "output": lines, "offset": offset, "reply": reply}
        if pid is None or not pid_alive_with(pid, "job", name):
            if not result.exists():
                raise AgentError(f"the device-side {name} process died without a reply", EXIT_REMOTE,
                                 output=lines, offset=offset)
            continue
        waited = time.monotonic() - t0
        if waited >= timeout or (lines and waited >= 0.3):
            return {"done": False, "output": lines, "offset": offset}
        time.sleep(0.2)
