"""The agent's entry point: one JSON request on stdin, one JSON reply on stdout (see the package docstring).

    $ echo '{"command": "status", "dir": "~/edgelite"}' | python3 ~/edgelite/agent.pyz
    {"ok": true, "protocol": 1, "dir": "/home/pi/edgelite", ...}

Command lines (not JSON): `supervise --dir DIR` (the long-running supervisor) and `job NAME` (a
detached call, started by the agent itself; its request still comes on stdin).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from edgelite.deploy.agent import PROTOCOL, jobs
from edgelite.deploy.agent.batch import cmd_batch, cmd_mkdirs
from edgelite.deploy.agent.bench import cmd_bench, cmd_clean_bench, cmd_prepare_bench
from edgelite.deploy.agent.bundles import cmd_accept_bundle, cmd_prepare_bundle, cmd_verify
from edgelite.deploy.agent.commit import cmd_commit, cmd_rollback
from edgelite.deploy.agent.facts import cmd_facts
from edgelite.deploy.agent.layout import AgentError, Layout
from edgelite.deploy.agent.release import cmd_release
from edgelite.deploy.agent.service import cmd_configure, cmd_service
from edgelite.deploy.agent.smoke import cmd_smoke
from edgelite.deploy.agent.status import cmd_logs, cmd_previous, cmd_status, cmd_uninstall
from edgelite.deploy.agent.supervisor import Supervisor
from edgelite.deploy.agent.trust import cmd_trust
from edgelite.deploy.agent.venv import cmd_venv
from edgelite.errors import EXIT_FAILED, EXIT_USAGE
from edgelite.jsonfile import write_json
from edgelite.remote.layout import DEFAULT_DIR

COMMANDS: dict[str, Callable[[Layout, dict], dict]] = {
    "facts": cmd_facts,
    "verify": cmd_verify,
    "prepare-bundle": cmd_prepare_bundle,
    "accept-bundle": cmd_accept_bundle,
    "trust": cmd_trust,
    "venv": cmd_venv,
    "smoke": cmd_smoke,
    "configure": cmd_configure,
    "release": cmd_release,
    "commit": cmd_commit,
    "rollback": cmd_rollback,
    "wait": jobs.cmd_wait,
    "status": cmd_status,
    "logs": cmd_logs,
    "previous": cmd_previous,
    "service": cmd_service,
    "uninstall": cmd_uninstall,
    "prepare-bench": cmd_prepare_bench,
    "bench": cmd_bench,
    "clean-bench": cmd_clean_bench,
    "mkdirs": cmd_mkdirs,
    "batch": lambda lay, req: cmd_batch(lay, req, handle),
}

#: the fields a request must have, per command (the optional ones are in the package docstring)
REQUIRED: dict[str, tuple[str, ...]] = {
    "verify": ("path",), "prepare-bundle": ("bundle",), "accept-bundle": ("bundle",), "venv": ("env", "wheel"),
    "smoke": ("env", "bundle"), "configure": ("mode", "user"), "release": ("bundle", "env", "source", "http"),
    "commit": ("release",), "wait": ("job",), "service": ("action",),
    "bench": ("work", "targets"), "clean-bench": ("work",), "mkdirs": ("paths",), "batch": ("steps",),
}


def handle(request: object) -> dict:
    """One request -> one reply; never raises (a crash is a failure reply, exit code 1)."""
    try:
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            raise AgentError('a request is a JSON object with a "command" (see the agent\'s docstring)', EXIT_USAGE)
        command = request["command"]
        if command not in COMMANDS:
            raise AgentError(f"unknown command {command!r}; one of {', '.join(COMMANDS)}", EXIT_USAGE)
        missing = [f for f in REQUIRED.get(command, ()) if request.get(f) in (None, "")]
        if missing:
            raise AgentError(f"the {command} request lacks {', '.join(missing)}", EXIT_USAGE)
        lay = Layout(request.get("dir") or DEFAULT_DIR)
        reply = jobs.start(lay, request) if request.get("detach") else COMMANDS[command](lay, request)
        return {**reply, "ok": True, "protocol": PROTOCOL}
    except AgentError as e:
        return {**e.details, "ok": False, "error": str(e), "exit_code": e.exit_code, "protocol": PROTOCOL}
    except subprocess.CalledProcessError as e:
        error = f"{' '.join(map(str, e.cmd))} failed with exit {e.returncode}"
        return {"ok": False, "error": error, "exit_code": EXIT_FAILED, "protocol": PROTOCOL}
    except Exception as e:  # the caller (maybe a detached job's waiter) always gets a reply
        return {"ok": False, "error": f"{type(e).__name__}: {e}", "exit_code": EXIT_FAILED, "protocol": PROTOCOL}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["supervise"]:
        os.umask(0o077)  # its log holds the service's warnings
        directory = argv[argv.index("--dir") + 1] if "--dir" in argv[:-1] else DEFAULT_DIR
        return Supervisor(Layout(directory)).run()
    if argv and argv[0] != "job" or len(argv) not in (0, 2):
        print("usage: agent.pyz < request.json | agent.pyz supervise --dir DIR (see the protocol in its docstring)",
              file=sys.stderr)
        return EXIT_USAGE
    os.umask(0o077)  # logs, releases, run files: the deploy user's alone (they may name a camera URL)
    # stdout carries the reply alone: whatever a step or its subprocesses print goes to stderr
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        request = json.loads(sys.stdin.read())
    except ValueError as e:
        reply = {"ok": False, "error": f"the request is not JSON ({e})", "exit_code": EXIT_USAGE, "protocol": PROTOCOL}
    else:
        reply = handle(request)
        if argv and isinstance(request, dict):  # a detached job: its waiter reads the reply from run/NAME.json
            write_json(jobs.paths(Layout(request.get("dir") or DEFAULT_DIR), argv[1])[1], reply)
    with os.fdopen(reply_fd, "w") as out:
        out.write(json.dumps(reply) + "\n")
    return 0 if reply["ok"] else int(reply.get("exit_code") or EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
