"""The workstation's side of the agent protocol: a JSON request in, the one JSON reply out, over SSH.

The protocol itself is written down in `edgelite.deploy.agent` (the package docstring). Nothing here
reads the agent's output as text: the reply is stdout, one JSON object; a failure reply becomes a
`DeployError` with the agent's own exit code.

    >>> agent = Agent(remote, "~/edgelite")                                   # doctest: +SKIP
    >>> agent.call("status")["current"]                                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from edgelite.deploy.agent.layout import AGENT_FILE
from edgelite.deploy.errors import EXIT_PREFLIGHT, EXIT_REMOTE, EXIT_USAGE, DeployError
from edgelite.remote.ssh import Remote, python_file_command

#: the exit status of the remote command when DIR holds no agent (the shell's "command not found"), and
#: when the device has no python3 to run it
NO_AGENT = 127
NO_PYTHON = 126


class Agent:
    """The device agent at `root` (a device path, `~/` allowed) reached through `remote`."""

    def __init__(self, remote: Remote, root: str):
        self.remote, self.root = remote, root
        self.command_line = python_file_command(f"{root.rstrip('/')}/{AGENT_FILE}", missing=NO_AGENT,
                                                no_python=NO_PYTHON)

    def call(self, command: str, *, check: bool = True, ssh_timeout: float | None = 600, **fields) -> dict:
        """Send `{"command": command, "dir": root, **fields}`; the reply. With `check`, a failure reply raises
        DeployError(its error, its exit code)."""
        request = {"command": command, "dir": self.root, **fields}
        r = self.remote.run(self.command_line, input=json.dumps(request), timeout=ssh_timeout, check=False)
        if r.returncode == NO_AGENT and not r.stdout.strip():
            raise DeployError(f"nothing deployed at {self.root} on {self.remote.target} (no {AGENT_FILE} there)",
                              EXIT_USAGE)
        if r.returncode == NO_PYTHON and not r.stdout.strip():
            raise DeployError(f"no python3 on {self.remote.target}: install it (sudo apt install python3 python3-venv)",
                              EXIT_PREFLIGHT)
        try:
            reply = json.loads(r.stdout)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or "ok" not in reply:
            lines = [ln for ln in (r.stderr or "").splitlines() if ln.strip()][-3:]
            raise DeployError(f"the device agent gave no reply to {command} (exit {r.returncode}): "
                              f"{' / '.join(lines) or 'no output'}", EXIT_REMOTE)
        if check and not reply["ok"]:
            raise failure(reply, f"{command} on the device")
        return reply

    def request(self, request: dict, *, check: bool = True, ssh_timeout: float | None = 600) -> dict:
        """Send one request of a plan (`edgelite.deploy.plan`: {"command", "dir", ...}); see `call`."""
        fields = {k: v for k, v in request.items() if k not in ("command", "dir")}
        return self.call(request["command"], check=check, ssh_timeout=ssh_timeout, **fields)

    def run_detached(self, request: dict, *, on_line: Callable[[str], None] | None = None,
                     poll: float = 5.0) -> tuple[dict, list[str]]:
        """Start `request` (a plan's request) detached on the device and follow its progress lines until its
        reply, for as long as the agent says the job may take (`follow_s`).

        Returns (the job's reply, its progress lines). Killing this process does not stop the job.
        """
        started = self.request({**request, "detach": True})
        job, timeout = started["job"], float(started.get("follow_s") or 900)
        offset, output, deadline = 0, [], time.monotonic() + timeout
        while True:
            r = self.call("wait", check=False, ssh_timeout=poll + 120, job=job, offset=offset, timeout=poll)
            for line in r.get("output") or []:
                output.append(line)
                if on_line:
                    on_line(line)
            if not r["ok"]:
                raise DeployError(f"lost track of the device-side {job}: {r.get('error')}", EXIT_REMOTE)
            offset = r["offset"]
            if r["done"]:
                return r["reply"], output
            if time.monotonic() > deadline:
                raise DeployError(f"the device-side {job} gave no result within {timeout:.0f} s; "
                                  f"see {self.root}/run/{job}.log on the device", EXIT_REMOTE)

    def stream(self, command: str, on_line: Callable[[str], None], **fields) -> int:
        """A call whose progress lines are its answer (`logs` with follow): stream them until it ends."""
        request = json.dumps({"command": command, "dir": self.root, **fields})
        code, _ = self.remote.stream(self.command_line, input=request, on_line=on_line)
        if code == NO_AGENT:
            raise DeployError(f"nothing deployed at {self.root} on {self.remote.target}", EXIT_USAGE)
        return code


def read_status(reply: dict) -> dict:
    """The agent's `status` reply as one flat record: `edgelite deploy --status` and `edgelite fleet status`
    both read it here.

    >>> r = read_status({"dir": "/home/pi/edgelite", "current": {"id": "r1", "format": "int8",
    ...     "meta": {"sha256": {"int8": "ab12cd34ef56"}, "edgelite": "0.4.0"}},
    ...     "state": {"state": "running", "active": True, "pid": 7},
    ...     "health": {"http": 200, "body": {"status": "ok", "fps": 9.5, "model": "int8"}}})
    >>> r["release"], r["service"], r["pid"], r["model"], r["model_sha256"], r["fps"], r["edgelite"]
    ('r1', 'running', 7, 'int8', 'ab12cd34', 9.5, '0.4.0')
    """
    cur = reply.get("current") or {}
    meta = cur.get("meta") or {}
    svc, state = reply.get("service") or {}, reply.get("state") or {}
    health = reply.get("health") or {}
    body = health.get("body") if isinstance(health.get("body"), dict) else {}
    model = body.get("model") or cur.get("format") or next(iter(meta.get("models") or []), None)
    wheel = str(meta.get("wheel") or "")
    return {
        "dir": reply.get("dir"), "mode": svc.get("mode"), "unit": svc.get("unit"),
        "service": state.get("state") or ("running" if state.get("active") else "stopped"),
        "pid": state.get("pid") if state.get("active") else None, "restarts": state.get("restarts", 0),
        "release": cur.get("id"), "bundle": cur.get("bundle"), "source": cur.get("source"),
        "http": cur.get("http"), "format": cur.get("format"),
        "model": model, "model_sha256": ((meta.get("sha256") or {}).get(model) or "")[:8] or None,
        "edgelite": meta.get("edgelite") or (wheel.split("-")[1] if wheel.count("-") >= 2 else None),
        "health": (str(health.get("body")) if health and not body else None),
        "health_http": health.get("http"), "health_status": body.get("status"), "health_model": body.get("model"),
        "frames": body.get("frames"), "fps": body.get("fps"), "last_result_age_s": body.get("last_result_age_s"),
        "releases": [r["id"] for r in reply.get("releases") or []], "failed": reply.get("failed") or [],
    }


def failure(reply: dict, what: str) -> DeployError:
    """A DeployError for a failure reply: `what: error`, with the agent's exit code."""
    return DeployError(f"{what}: {reply.get('error')}", int(reply.get("exit_code") or EXIT_REMOTE))
