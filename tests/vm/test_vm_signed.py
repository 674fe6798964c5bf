"""Signed bundles on the emulated Pi: once the device has a trust list, a bundle signed by a key it does not
trust is refused ON the device (its agent runs the OS's own `ssh-keygen -Y verify`) and the serving release
keeps serving under systemd. The session's deployment is left as found: the trust list goes again at the end."""

from __future__ import annotations

import subprocess
import time

import pytest

from edgelite.errors import EXIT_UNTRUSTED
from edgelite.signature import sign
from tests.deploy.bundlekit import another_version

from .vmkit import DIR, TIMINGS

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]


def test_a_bundle_signed_by_an_untrusted_key_is_refused_and_the_old_one_keeps_serving(vm, deployed, tiny_bundle,
                                                                                         wheel, tmp_path):
    keys = {}
    for name in ("release", "intruder"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(tmp_path / name)],
                       check=True)
        keys[name] = tmp_path / name
    foreign = another_version(tiny_bundle, tmp_path / "foreign", "foreign")  # not the one serving
    sign(foreign, keys["intruder"])
    serving = vm.ssh(f"readlink {DIR}/current").stdout.strip()
    pid = vm.unit()["MainPID"]
    r = vm.deploy("--trust", f"{keys['release']}.pub", timeout=600)  # the trust list alone, no bundle
    assert r.returncode == 0 and "trust list installed" in r.stdout, r.stdout[-3000:]
    assert "the release serving now is not signed by these keys" in r.stdout  # the session's bundle is unsigned
    try:
        assert vm.ssh(f"command -v ssh-keygen && test -f {DIR}/trusted_signers").returncode == 0
        t0 = time.monotonic()
        r = vm.deploy(str(foreign), "--offline", "--source", "/dev/video0", "--wheel", str(wheel))
        TIMINGS["signed bundles: untrusted deploy refused"] = time.monotonic() - t0
        assert r.returncode == EXIT_UNTRUSTED, r.stdout[-3000:]
        assert "refused by this device's trust list" in r.stdout and "which" in r.stdout and "does not trust" in r.stdout
        assert "[4/7]" not in r.stdout
        assert vm.ssh(f"readlink {DIR}/current").stdout.strip() == serving
        u = vm.unit()
        assert u["ActiveState"] == "active" and u["MainPID"] == pid, u  # not even restarted
        frames = vm.frames()
        vm.wait_frames_above(frames, timeout=120)
    finally:
        r = vm.deploy("--remove-trust", timeout=600)
        assert r.returncode == 0 and "trust list removed" in r.stdout, r.stdout[-3000:]
