"""The agent is the only code that runs on a device: no module but the agent (edgelite/deploy/agent/) and
edgelite/remote/ builds a command line for a device (checked from the source alone, with ast).

A device command is the first argument of a connector's `run` / `stream` / `ssh_argv` (`Remote`'s) built
in place - a string, an f-string, a concatenation - rather than handed over ready-made by remote/ (the
agent's command line, `edgelite.remote.ssh.python_file_command`).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALLOWED = ("edgelite/deploy/agent/", "edgelite/remote/")
#: modules still shipping their own device code, with what replaces it (issue #20 item 2)
NOT_YET: dict[str, str] = {}
CALLS = ("run", "stream", "ssh_argv")


def _device_commands(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CALLS):
            continue
        owner = node.func.value
        name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
        if name in ("subprocess", "asyncio", "agent"):
            continue  # a process here, or an agent request (`Agent.stream("logs")`: a request name, not a command)
        if node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)) and (
                not isinstance(node.args[0], ast.Constant) or isinstance(node.args[0].value, str)):
            out.append(f"{path.relative_to(REPO)}:{node.lineno}: .{node.func.attr}({ast.unparse(node.args[0])[:60]})")
    return out


def test_only_the_agent_and_remote_build_device_commands():
    bad = []
    for path in sorted((REPO / "edgelite").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(ALLOWED) or rel in NOT_YET:
            continue
        bad += _device_commands(path)
    assert not bad, "device command lines built outside the agent and edgelite/remote:\n" + "\n".join(bad)


def test_the_check_finds_a_device_command(tmp_path):
    (tmp_path / "m.py").write_text("def f(remote, d):\n    remote.run(f'mkdir -p {d}')\n    subprocess.run('x')\n")
    global REPO
    repo, REPO = REPO, tmp_path
    try:
        assert _device_commands(tmp_path / "m.py") == ["m.py:2: .run(f'mkdir -p {d}')"]
    finally:
        REPO = repo


def test_what_is_not_yet_moved_still_exists():
    for rel in NOT_YET:
        assert _device_commands(REPO / rel), f"{rel} builds no device command any more: drop it from NOT_YET"
