"""The workstation's side of the agent protocol: a JSON request in, the one JSON reply out, over SSH.

The protocol itself is written down in `edgelite.deploy.agent` (the package docstring). Nothing here
reads the agent's output as text: the reply is stdout, one JSON object; a failure reply becomes a
`DeployError` with the agent's own exit code.

    >>> agent = Agent(remote, "~/edgelite")                                   # doctest: +SKIP
    >>> agent.call("status")["current"]                                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable

from edgelite.deploy.agent.layout import AGENT_FILE
from edgelite.deploy.errors import EXIT_REMOTE, EXIT_USAGE, DeployError
from edgelite.remote.ssh import Remote, rq

#: the exit status of the remote command when DIR holds no agent (the shell's "command not found")
NO_AGENT = 127


class Agent:
    """The device agent at `root` (a device path, `~/` allowed) reached through `remote`."""

    def __init__(self, remote: Remote, root: str):
        self.remote, self.root = remote, root
        pyz = f"{rq(root.rstrip('/'))}/{AGENT_FILE}"
        self.command_line = f"test -f {pyz} || exit {NO_AGENT}; exec python3 {pyz}"

    def call(self, command: str, *, check: bool = True, ssh_timeout: float | None = 600, **fields) -> dict:
        """Send `{"command": command, "dir": root, **fields}`; the reply. With `check`, a failure reply raises
        DeployError(its error, its exit code)."""
        request = {"command": command, "dir": self.root, **fields}
        r = self.remote.run(self.command_line, input=json.dumps(request), timeout=ssh_timeout, check=False)
        if r.returncode == NO_AGENT and not r.stdout.strip():
            raise DeployError(f"nothing deployed at {self.root} on {self.remote.target} (no {AGENT_FILE} there)",
                              EXIT_USAGE)
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

    def run_detached(self, command: str, *, on_line: Callable[[str], None] | None = None, timeout: float = 900,
                     poll: float = 5.0, **fields) -> tuple[dict, list[str]]:
        """Start `command` detached on the device and follow its progress lines until its reply.

        Returns (the job's reply, its progress lines). Killing this process does not stop the job.
        """
        job = self.call(command, detach=True, **fields)["job"]
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
        line = f"printf '%s' {shlex.quote(request)} | {{ {self.command_line}; }}"
        code, _ = self.remote.stream(line, on_line=on_line)
        if code == NO_AGENT:
            raise DeployError(f"nothing deployed at {self.root} on {self.remote.target}", EXIT_USAGE)
        return code


def failure(reply: dict, what: str) -> DeployError:
    """A DeployError for a failure reply: `what: error`, with the agent's exit code."""
    return DeployError(f"{what}: {reply.get('error')}", int(reply.get("exit_code") or EXIT_REMOTE))
