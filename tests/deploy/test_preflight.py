"""Preflight: the agent's real `facts`, assessed; and one real refusal over SSH.

The facts are the agent's, for real (on this machine, under a 32-bit personality with `setarch i686`,
and over SSH on the test device). Where a real device is out of reach (a Pi with Python 3.9), one fact
of the real answer is replaced by what that device reports, so the refusal is still judged on the real
format (written here as `key=value` lines, one fact a line, to edit them).
"""

from __future__ import annotations

import shutil

import pytest

from edgelite.deploy.errors import EXIT_PREFLIGHT
from edgelite.deploy.preflight import Facts, assess, report

from .rig import agent_facts


def probe_here(*prefix: str) -> str:
    return "".join(f"{k}={v}\n" for k, v in agent_facts("~/edgelite", *prefix).items())


def parse_probe(text: str) -> Facts:
    return Facts(dict(line.split("=", 1) for line in text.splitlines() if "=" in line))


@pytest.fixture(scope="module")
def real_output() -> str:
    return probe_here()


def with_line(text: str, key: str, value: str) -> str:
    lines = [ln for ln in text.splitlines() if not ln.startswith(key + "=")]
    return "\n".join(lines[:-1] + [f"{key}={value}", lines[-1]]) + "\n"


def test_probe_of_this_machine_is_deployable(real_output):
    facts = parse_probe(real_output)
    assert facts.complete
    assert facts.arch == "x86_64" and not facts.is_32bit
    assert facts.python_version >= (3, 10)
    assert facts.platform_tag().startswith("manylinux_2_") and facts.platform_tag().endswith("_x86_64")
    a = assess(facts, source="file")
    assert a.ok, a.problems
    text = report(facts, "me@here", a)
    assert "python" in text and "disk" in text and "service" in text


def test_refuses_a_32bit_userland():
    if shutil.which("setarch") is None:
        pytest.skip("setarch (util-linux) is missing")
    facts = parse_probe(probe_here("setarch", "i686"))  # the kernel reports i686 to this process tree
    assert facts.machine == "i686" and facts.is_32bit
    problems = assess(facts, source="file").problems
    assert any(p.startswith("32-bit OS") and "64-bit" in p for p in problems), problems


def test_refuses_armhf_raspberry_pi_os(real_output):
    # what 32-bit Raspberry Pi OS prints on a Pi 4 with its 64-bit kernel: uname says aarch64, userland is armhf
    text = with_line(with_line(with_line(real_output, "uname_m", "aarch64"), "dpkg_arch", "armhf"), "python_bits", "32")
    problems = assess(parse_probe(text), source="file").problems
    assert any(p.startswith("32-bit OS") and "armhf" in p for p in problems), problems


def test_refuses_python_too_old(real_output):
    text = with_line(real_output, "python_version", "3.9.2")  # Raspberry Pi OS Bullseye's python3
    problems = assess(parse_probe(text), source="file").problems
    assert any(p.startswith("Python too old") and "3.9.2" in p and "3.10" in p for p in problems), problems


def test_refuses_missing_venv_and_no_python(real_output):
    problems = assess(parse_probe(with_line(real_output, "python_venv", "no")), source="file").problems
    assert any("python3-venv" in p for p in problems)
    no_py = "\n".join(ln for ln in real_output.splitlines() if not ln.startswith("python"))
    problems = assess(parse_probe(no_py), source="file").problems
    assert any(p.startswith("no python3") for p in problems)


def test_offline_refuses_a_device_without_glibc(real_output):
    """A musl device (or no getconf) prints an empty glibc: --offline has no manylinux wheels for it."""
    facts = parse_probe(with_line(real_output, "glibc", ""))
    assert any("--offline" in p and "glibc" in p for p in assess(facts, source="file", offline=True).problems)
    assert not any("glibc" in p for p in assess(facts, source="file").problems)


def test_camera_source_needs_a_camera(real_output):
    facts = parse_probe(real_output)
    if facts.cameras:
        pytest.skip("this machine has a camera")
    problems = assess(facts, source="0").problems
    assert any("no camera at /dev/video0" in p and "--source FILE" in p for p in problems)
    assert assess(parse_probe(with_line(real_output, "cameras", "/dev/video0 /dev/video1")), source="0").ok


def test_truncated_probe_is_a_failure(real_output):
    half = real_output[: len(real_output) // 2]
    assert assess(parse_probe(half)).problems[0].startswith("device probe failed")


def test_real_preflight_refusal_over_ssh(sshd, tiny_bundle):
    """The agent's facts over SSH on the test device; --source 0 with no camera stops before anything but the
    agent is copied."""
    r = sshd.cli(str(tiny_bundle), "--source", "0", directory="~/edgelite-refused")
    assert r.returncode == EXIT_PREFLIGHT, r.stdout
    assert "preflight" in r.stdout and "x86_64 (64-bit)" in r.stdout
    assert "no camera at /dev/video0" in r.stdout
    assert "[2/7]" not in r.stdout  # refused at step 1
    # nothing but the agent, its unpacked copy and `run/` (the facts' random token salt, 0600)
    assert sshd.ssh("ls -A ~/edgelite-refused").stdout.split() == [".agent", "agent.pyz", "run"]
