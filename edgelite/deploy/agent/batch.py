"""Several requests as ONE agent call (`batch`), and the device folders a push needs (`mkdirs`).

A fleet host's rollout is two batches (`edgelite.fleet`'s role): before the push, the folders, what runs
there now, the trust list and whether the bundle is there already; after the push, one detached batch
from accepting the bundle to the health check. Each agent call costs Ansible a task, an SSH round trip
and a Python start on the device; a batch pays that once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edgelite.deploy.agent.layout import AgentError, Layout
from edgelite.errors import EXIT_FAILED, EXIT_USAGE

#: commands after which a failure can no longer say "nothing was switched"
SWITCHES = ("commit", "rollback")


def cmd_batch(lay: Layout, req: dict, handle: Callable[[dict], dict]) -> dict:
    """Run `steps` (requests, each at most once per command) in order in this process; reply `replies`
    {command: reply}. The first failure ends the batch and is its failure (`step` names it, `replies` holds
    the replies so far and its own). A `commit` step without a `release` commits the one the batch's
    `release` step wrote. Steps run in the batch's folder; a step may not detach or be a batch itself."""
    steps = req.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
        raise AgentError("a batch's steps are a non-empty list of requests", EXIT_USAGE)
    names = [s.get("command") for s in steps]
    for step, name in zip(steps, names, strict=True):
        if name == "batch" or step.get("detach") or names.count(name) > 1:
            raise AgentError(f"batch step {name!r}: a step is not a batch, does not detach and runs once", EXIT_USAGE)
        if step.get("dir") not in (None, req.get("dir")):
            raise AgentError(f"batch step {name!r} names another folder ({step.get('dir')}) than the batch's",
                             EXIT_USAGE)
    replies: dict[str, dict] = {}
    for step in steps:
        name = step["command"] if isinstance(step.get("command"), str) else str(step.get("command"))
        if name == "commit" and not step.get("release") and "release" in replies:
            step = {**step, "release": replies["release"].get("release")}
        reply = handle({**step, "dir": str(lay.root)})
        replies[name] = reply
        if not reply.get("ok"):
            switched = any(s in replies for s in SWITCHES)
            error = f"{name}: {reply.get('error')}" + ("" if switched else "; nothing was switched")
            raise AgentError(error, int(reply.get("exit_code") or EXIT_FAILED), step=name, replies=replies)
    return {"replies": replies}


def cmd_mkdirs(lay: Layout, req: dict) -> dict:
    """Make the folders `paths` (inside DIR; what the deploy plan's `dirs` names) as `mkdir -p` would
    (mode 0755); reply the ones that were new."""
    paths = req.get("paths")
    if not isinstance(paths, list):
        raise AgentError("mkdirs: paths is a list of folders inside the deploy folder", EXIT_USAGE)
    wanted = [Path(os.path.expanduser(str(p))) for p in paths]
    for p, path in zip(paths, wanted, strict=True):
        if not path.is_absolute() or ".." in path.parts or not path.is_relative_to(lay.root):
            raise AgentError(f"mkdirs: {p} is not a folder inside {lay.root}", EXIT_USAGE)
    lay.check_owned()  # a folder edgelite did not make is refused before anything is made in it
    made = []
    for path in wanted:
        missing = [d for d in [path, *path.parents] if d.is_relative_to(lay.root) and not d.exists()]
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            os.chmod(d, 0o755)  # as `mkdir -p` (edgelite deploy's) under the usual umask: not the agent's 077
            made.append(str(d))
    lay.ensure()  # the rest of the layout (the agent's own folders, the marker)
    return {"made": made}
