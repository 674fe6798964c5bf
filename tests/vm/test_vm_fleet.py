"""`edgelite fleet deploy` to the emulated Pi: the Ansible role, not `edgelite deploy`, updates an arm64 device
under systemd. The controller plans the device's own wheelhouse (aarch64, its Python) and pushes it offline.
The new release serves from vivid's camera. `edgelite deploy --rollback` then brings back the session's
release (its MQTT settings and password included) for the tests that follow."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from edgelite.deploy.artifacts import checked_bundle
from tests.deploy.bundlekit import another_version

from .vmkit import DIR, HEALTH, HOME, PI_OS, RELEASES, ROOT, TIMINGS, env

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]


def current(vm) -> str:
    """The release id `current` points at (the link is releases/<id>)."""
    return vm.ssh(f"readlink {DIR}/current").stdout.strip().rsplit("/", 1)[-1]


def fleet_deploy(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgelite", "fleet", "deploy", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=ROOT, env=env())


def test_a_fleet_rollout_updates_the_pi_and_a_rollback_restores_it(vm, deployed, tiny_bundle, wheel, tmp_path):
    release = another_version(tiny_bundle, tmp_path / "fleet-bundle", "fleet")  # not "already serving"
    inv = tmp_path / "hosts.ini"
    inv.write_text("[pis]\n"
                   f"pi ansible_host=127.0.0.1 ansible_port={vm.port} ansible_user=pi "
                   f"ansible_ssh_private_key_file={HOME / 'id_ed25519'} edgelite_dir={DIR} "
                   f"edgelite_source=/dev/video0 edgelite_http={HEALTH} edgelite_health_timeout=300 "
                   "edgelite_print_every=10\n")
    serving = current(vm)
    pid = vm.unit()["MainPID"]
    summary = tmp_path / "summary.json"
    t0 = time.monotonic()
    r = fleet_deploy(str(release), "-i", str(inv), "--known-hosts", str(vm.known_hosts), "--strict-host-key",
                     "--offline", "--wheel", str(wheel), "--canary", "0", "--json", str(summary))
    TIMINGS["fleet deploy (one Pi, offline)"] = time.monotonic() - t0
    print(r.stdout[-6000:])
    try:
        assert r.returncode == 0, r.stdout[-5000:]
        (row,) = json.loads(summary.read_text())["hosts"]
        assert row["host"] == "pi" and row["result"] == "deployed", row
        assert row["before"] == serving and row["after"] not in (None, serving), row
        assert current(vm) == row["after"]
        info = json.loads(vm.ssh(f"cat {DIR}/current/release.json").stdout)
        assert info["bundle"] == checked_bundle(release).id != checked_bundle(tiny_bundle).id
        # --offline: the release's venv was built from the wheels the controller planned for this Pi (no index)
        where = vm.ssh(f"{DIR}/venvs/{info['venv']}/bin/python -c 'import platform, sys; "
                       "print(platform.machine(), *sys.version_info[:2])'").stdout.split()
        assert where == ["aarch64", *RELEASES[PI_OS]["python"].split(".")], where
        u = vm.unit()
        assert u["ActiveState"] == "active" and u["MainPID"] != pid, u  # the role restarted it on the new release
        vm.wait_frames_above(vm.frames(), timeout=120)  # classifying vivid's camera again
    finally:
        t0 = time.monotonic()
        back = vm.deploy("--rollback", timeout=900)
        TIMINGS["rollback after the fleet rollout"] = time.monotonic() - t0
    assert back.returncode == 0, back.stdout[-4000:]
    assert current(vm) == serving
    vm.wait_frames_above(vm.frames(), timeout=120)
