"""Every shell script in the repo passes shellcheck (skipped where shellcheck is not installed:
scripts/system-deps.sh installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHEBANG = re.compile(rb"#!\s*\S*(/|env\s+)(sh|bash|dash)\b")
# edited on another branch as this test was written: its notes are left to that change. Remove it once it passes.
PENDING: dict[str, str] = {}  # script -> why its notes are not fixed yet


def shell_scripts() -> list[str]:
    """Tracked files that are shell scripts (a .sh suffix or an sh/bash shebang), relative to the repo."""
    try:
        files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        names = [n for n in files.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: the places scripts live
        names = [str(p.relative_to(REPO)) for d in ("scripts", ".ci") for p in (REPO / d).glob("*") if p.is_file()]
    out = []
    for name in sorted(names):
        path = REPO / name
        if not path.is_file():
            continue
        if path.suffix in (".sh", ".bash") or SHEBANG.match(path.read_bytes()[:100]):
            out.append(name)
    return out


def test_the_scripts_are_found():
    assert {"scripts/system-deps.sh", ".ci/run"} <= set(shell_scripts())


@pytest.mark.parametrize("script", [
    pytest.param(s, marks=pytest.mark.xfail(reason=PENDING[s], strict=False)) if s in PENDING else s
    for s in shell_scripts()])
def test_shellcheck(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck; make setup does)")
    result = subprocess.run(["shellcheck", "--format=gcc", script], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"shellcheck {script}:\n{result.stdout}{result.stderr}"
