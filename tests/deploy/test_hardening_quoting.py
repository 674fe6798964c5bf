"""Issue #11 finding 10: a `--dir` with a space and a `%` deploys, runs and uninstalls on the real sshd rig
(rsync with --protect-args, scp over SFTP, `--` before local paths, ExecStart quoted and `%` escaped), and
host names with shell characters are refused. The same deploy checks finding 8: with `-v` and
`--run-args '--token T'`, T shows in no output, no argv and no release.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edgelite.deploy.agent.unit import render_unit, verify_unit
from edgelite.remote.errors import RemoteError
from edgelite.remote.target import parse_target

from .rig import free_port, wait_healthz

ODD = "~/edge lite 100%x"
TOKEN = "s3cret-preview-token"  # a space, and a % that systemd would expand as a specifier


@pytest.mark.parametrize("bad", ["pi@host;reboot", "pi@$(id)", "pi@a|b", "pi@h&", "pi@`id`", "p$x@host",
                                 "pi@host\tx", "pi@(x)"])
def test_host_names_with_shell_characters_are_refused(bad):
    with pytest.raises(RemoteError, match="--host") as e:
        parse_target(bad)
    assert e.value.exit_code == 2


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_of_an_odd_dir_is_one_systemd_accepts(tmp_path):
    root = tmp_path / "edge lite 100%x"
    (root / "current").mkdir(parents=True)
    run = root / "current" / "run"
    run.write_text("#!/bin/sh\nexit 0\n")
    run.chmod(0o755)
    unit = tmp_path / "edgelite.service"
    unit.write_text(render_unit(str(root), None))
    text = unit.read_text()
    assert f'ExecStart=/bin/sh "{str(root).replace("%", "%%")}/current/run"' in text
    assert verify_unit(unit) is None, verify_unit(unit)
    # systemd's own reading of the line: the path, whole, with the % back
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert "Invalid" not in r.stderr and "Ignoring" not in r.stderr, r.stderr  # the program is /bin/sh: the folder is its argument


def test_a_dir_with_a_space_and_a_percent_deploys_and_uninstalls(sshd, tiny_bundle, wheel, wheelhouse, video):
    port = free_port()
    root = sshd.home / ODD[2:]
    try:
        r = sshd.cli(str(tiny_bundle), "--offline", "--source", str(video), "--http", f"127.0.0.1:{port}",
                     "--wheel", str(wheel), "--health-timeout", "60", "--json", "-v",
                     "--run-args", f"--token {TOKEN}", directory=ODD)
        assert r.returncode == 0, r.stdout[-3000:]
        # finding 8: the token travels in the JSON request on stdin: not in -v output, argv or release.json
        assert TOKEN not in r.stdout and "$ ssh" in r.stdout
        rid = os.readlink(root / "current").split("/")[-1]
        assert TOKEN not in (root / "releases" / rid / "release.json").read_text()
        pid = json.loads((root / "run" / "state.json").read_text())["pid"]
        assert TOKEN.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        result = json.loads(r.stdout.strip().splitlines()[-1])
        assert result["ok"] and result["unit"] == {"verified": True, "findings": None}
        assert wait_healthz(port)["status"] == "ok"
        assert (root / "bundles").is_dir() and (root / "current" / "run").is_file()
        assert f'ExecStart=/bin/sh "{str(root).replace("%", "%%")}/current/run"' in (root / "edgelite.service").read_text()
        # the scp fallback puts files into the same odd folder
        r = sshd.cli(str(tiny_bundle), "--offline", "--source", str(video), "--http", f"127.0.0.1:{port}",
                     "--wheel", str(wheel), "--health-timeout", "60", "--transfer", "scp", directory=ODD)
        assert r.returncode == 0, r.stdout[-3000:]
    finally:
        r = sshd.cli("--uninstall", directory=ODD)
    assert r.returncode == 0, r.stdout
    assert not root.exists()
