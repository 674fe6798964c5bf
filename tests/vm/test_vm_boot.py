"""The VM is a Pi-like machine: arm64 Bookworm, systemd as PID 1, a V4L2 camera, the network shut."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]


def test_boots_to_ssh_with_systemd_and_a_camera(vm):
    assert vm.boot_seconds < 600, f"boot to SSH took {vm.boot_seconds:.0f} s"
    facts = vm.ssh("uname -m; ps -p 1 -o comm=; . /etc/os-release; echo $VERSION_CODENAME; "
                   "id -nG; sudo -n true && echo sudo-ok").stdout.split()
    assert facts[:3] == ["aarch64", "systemd", "bookworm"], facts
    assert {"video", "adm", "sudo"} <= set(facts[3:]) and facts[-1] == "sudo-ok", facts
    state = vm.ssh("systemctl is-system-running --wait", check=False, timeout=300).stdout.strip()
    failed = vm.ssh("systemctl --failed --no-legend --plain", check=False).stdout.strip()
    assert state == "running", f"system {state}; failed units:\n{failed}"
    # vivid, loaded at boot from /etc/modules-load.d, is the camera: a V4L2 capture device
    info = vm.ssh("v4l2-ctl -d /dev/video0 --info").stdout
    assert "vivid" in info and "Video Capture" in info, info


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
