"""Issue #22: the service's systemd unit is sandboxed (`systemd-analyze security` rated it 9.0 UNSAFE) and
names any deploy folder correctly (`systemd-analyze verify` rejected one holding `"`, `'`, `\\` or a tab).

Both are checked by this host's own systemd-analyze; tests/vm/test_vm_sandbox.py runs the same unit under
systemd on the emulated Pi (the camera, the preview, saved frames and the watchdog inside the sandbox).
"""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgelite.deploy.agent.layout import AgentError
from edgelite.deploy.agent.unit import render_unit

from .rig import hostile_names

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")

#: the sandbox parts a --user manager applies too (seccomp, with NoNewPrivileges=yes) and the system-only ones
SECCOMP_LINES = ("SystemCallFilter=@system-service", "SystemCallArchitectures=native", "RestrictNamespaces=yes",
                 "MemoryDenyWriteExecute=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK")
SYSTEM_LINES = ("ProtectSystem=strict", "ProtectHome=read-only", "PrivateTmp=yes", "CapabilityBoundingSet=",
                "DevicePolicy=closed", "DeviceAllow=char-video4linux rw", "SupplementaryGroups=video plugdev")


def exposure(unit: Path) -> float:
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout[-2000:] + r.stderr[-2000:]
    return float(m.group(1))


@needs_analyze
def test_the_deployed_unit_rates_ok_in_systemd_analyze_security(tmp_path):
    unit = tmp_path / "edgelite.service"
    unit.write_text(render_unit("/home/pi/edgelite", "pi"))
    score = exposure(unit)
    assert score <= 4.9, f"systemd-analyze security: {score} (> 4.9, worse than OK)"
    text = unit.read_text()
    for line in SECCOMP_LINES + SYSTEM_LINES + ('ReadWritePaths="/home/pi/edgelite"',):
        assert line in text.splitlines(), line
    # a --user unit: the seccomp part only (its manager cannot mount, drop capabilities or filter devices)
    user = render_unit("/home/pi/edgelite", None)
    assert all(ln in user.splitlines() for ln in SECCOMP_LINES)
    assert not any(ln.split("=")[0] + "=" in user for ln in SYSTEM_LINES), user


@needs_analyze
def test_units_of_hostile_folder_names_pass_systemd_analyze_verify(tmp_path):
    me = getpass.getuser()
    units, failures = [], []
    for i, name in enumerate(hostile_names()):
        root = tmp_path / "dirs" / name
        (root / "current").mkdir(parents=True, exist_ok=True)
        (root / "current" / "run").write_text("#!/bin/sh\nexit 0\n")
        (root / "current" / "run").chmod(0o755)
        for mode, user in (("system", me), ("user", None)):
            unit = tmp_path / f"edgelite-{mode}-{i}.service"
            unit.write_text(render_unit(str(root), user))
            units.append((unit, name))
    # one systemd-analyze for all of them; a finding names its file
    r = subprocess.run(["systemd-analyze", "verify", *[str(u) for u, _ in units]], capture_output=True, text=True,
                       timeout=300)
    for unit, name in units:
        lines = [ln for ln in (r.stdout + r.stderr).splitlines() if f"{unit.name}:" in ln or f"{unit}:" in ln]
        if lines:
            failures.append(f"{name!r}: {lines[0]}")
    assert not failures, "\n".join(failures)


def test_unit_lines_name_the_folder_exactly():
    root = '/home/pi/a"\'\\\t%$;b'
    text = render_unit(root, "pi")
    assert 'ExecStart=/bin/sh "/home/pi/a\\"\'\\\\\t%%$$;b/current/run"' in text  # C escapes, %% and $$
    assert 'ReadWritePaths="/home/pi/a\\"\'\\\\\t%%$;b"' in text  # no $ expansion in a path list
    assert "WorkingDirectory=/home/pi/a\"'\\\t%%$;b/current\n" in text  # the rest of the line, verbatim


@pytest.mark.parametrize("bad", ["/home/pi/new\nline", "/home/pi/cr\rx", "/home/pi/esc\x1b[2J", "/home/pi/del\x7f"])
def test_a_folder_no_unit_can_name_is_refused_in_one_line(bad):
    with pytest.raises(AgentError, match="--dir without line breaks or control characters") as e:
        render_unit(bad, "pi")
    assert e.value.exit_code == 2 and "\n" not in str(e.value)
