"""The VM is a Pi-like machine: arm64 Debian of the chosen release, the chosen CPU, systemd as PID 1, a V4L2 camera,
the network shut."""

from __future__ import annotations

import pytest

from .vmkit import PI_CPU, PI_OS, RELEASES

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]


def test_boots_to_ssh_with_systemd_and_a_camera(vm):
    assert vm.boot_seconds < 600, f"boot to SSH took {vm.boot_seconds:.0f} s"
    facts = vm.ssh("uname -m; ps -p 1 -o comm=; . /etc/os-release; echo $VERSION_CODENAME; "
                   "id -nG; sudo -n true && echo sudo-ok").stdout.split()
    assert facts[:3] == ["aarch64", "systemd", PI_OS], facts
    assert {"video", "adm", "sudo"} <= set(facts[3:]) and facts[-1] == "sudo-ok", facts
    state = vm.ssh("systemctl is-system-running --wait", check=False, timeout=300).stdout.strip()
    failed = vm.ssh("systemctl --failed --no-legend --plain", check=False).stdout.strip()
    assert state == "running", f"system {state}; failed units:\n{failed}"
    # vivid, loaded at boot from /etc/modules-load.d, is the camera: a V4L2 capture device
    info = vm.ssh("v4l2-ctl -d /dev/video0 --info").stdout
    assert "vivid" in info and "Video Capture" in info, info


def test_the_os_release_and_cpu_are_the_ones_users_have(vm):
    """Trixie: Python 3.13 + apt numpy 2.2 on a Pi 5's Cortex-A76 (dot-product: XNNPACK's other int8 kernels);
    Bookworm: 3.11 + 1.24 on a Pi 4's Cortex-A72 (no dot-product)."""
    want = RELEASES[PI_OS]
    got = vm.ssh("python3 -c 'import platform, numpy; print(platform.python_version(), numpy.__version__)'").stdout.split()
    assert got[0].startswith(want["python"] + ".") and got[1].startswith(want["numpy"] + "."), got
    features = set(vm.ssh("grep -m1 '^Features' /proc/cpuinfo").stdout.split(":", 1)[1].split())
    part = vm.ssh("grep -m1 '^CPU part' /proc/cpuinfo").stdout.split(":", 1)[1].strip()
    assert part == {"cortex-a76": "0xd0b", "cortex-a72": "0xd08"}[PI_CPU], part  # the core qemu models
    assert ("asimddp" in features) == (PI_CPU == "cortex-a76"), features


def test_password_login_is_refused(vm):
    r = vm.ssh("true", check=False)  # key works (sanity) ...
    assert r.returncode == 0
    conf = vm.ssh("sudo -n sshd -T | grep -Ei '^(passwordauthentication|permitrootlogin|kbdinteractiveauthentication) '").stdout
    assert sorted(conf.split()) == sorted("passwordauthentication no permitrootlogin no kbdinteractiveauthentication no".split())


def test_the_guest_reaches_nothing(vm):
    """qemu user networking with restrict=on: no route to the host or beyond; only the hostfwd ports come in."""
    code = ("import socket\nfor host, port in (('10.0.2.2', 22), ('10.0.2.2', 80), ('1.1.1.1', 443)):\n"
            "    s = socket.socket(); s.settimeout(3)\n"
            "    print(host, port, s.connect_ex((host, port)) == 0)\n")
    out = vm.ssh(f"python3 -c \"{code}\"").stdout.split("\n")
    assert [ln for ln in out if ln.endswith("True")] == [], out
