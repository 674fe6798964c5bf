"""A full card, for real: the test device's deploy folder on a small filesystem (tmpfs, mounted for its user), and
the deploy's space estimate (bundle + wheels + the venv they unpack into) against what it really wrote there."""

from __future__ import annotations

import os
import pwd
import subprocess

import pytest

from edgelite.deploy.errors import EXIT_PREFLIGHT

from .rig import free_port, wait_healthz

pytestmark = pytest.mark.timeout(900)

DIR = "~/card/edgelite"


@pytest.fixture()
def card(sshd):
    """A 480 MB filesystem (tmpfs) at ~/card of the device user: less than the 600 MB the parent commit asked
    for an --offline deploy, more than one needs with this machine's wheels (~100 MB of them, ~320 MB of venv)."""
    mnt = sshd.home / "card"
    mnt.mkdir(exist_ok=True)
    pw = pwd.getpwnam(sshd.user)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=480m,uid={pw.pw_uid},gid={pw.pw_gid},mode=0755", "tmpfs",
                    str(mnt)], check=True)
    try:
        yield mnt
    finally:
        sshd.cli("--uninstall", directory=DIR)
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _used_mb(path) -> float:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize / 2**20


def _free_mb(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // 2**20


def _needs(out: str) -> int:
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("needs "))
    return int(line.split()[1])


def test_the_space_estimate_is_the_real_size_and_a_deploy_that_does_not_fit_is_refused(
        sshd, card, tiny_bundle, bundle_v2, wheel, wheel_b, wheelhouse, video):
    """1. A first --offline deploy onto the 480 MB card fits: it estimates at least what it then writes, and not
    30 % more (the parent commit refused it: "a deploy needs about 600 MB").
    2. The card filled to ~40 MB free: another bundle with the same venv still deploys (it needs the bundle,
    not a venv again).
    3. A new wheel (a new venv, ~320 MB) is refused at step 2, with needed vs free and what to do, before
    anything is copied; the release that serves is untouched."""
    port = free_port()
    args = ["--offline", "--source", str(video), "--http", f"127.0.0.1:{port}", "--health-timeout", "60"]
    root = card / "edgelite"

    r = sshd.cli(str(tiny_bundle), *args, "--wheel", str(wheel), directory=DIR)
    assert r.returncode == 0, r.stdout[-3000:]
    need, used = _needs(r.stdout), _used_mb(card)
    assert used <= need <= 1.3 * used, (need, used)
    first = os.readlink(root / "current")

    filler = card / "filler"
    subprocess.run(["fallocate", "-l", str((_free_mb(card) - 40) << 20), str(filler)], check=True)
    assert 30 <= _free_mb(card) <= 45
    r = sshd.cli(str(bundle_v2), *args, "--wheel", str(wheel), directory=DIR)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "venv reused" in r.stdout and _needs(r.stdout) < 30, r.stdout
    second = os.readlink(root / "current")
    assert second != first and wait_healthz(port)["frames"] > 0

    venvs = sorted(os.listdir(root / "venvs"))
    r = sshd.cli(str(tiny_bundle), *args, "--wheel", str(wheel_b), directory=DIR)
    assert r.returncode == EXIT_PREFLIGHT, r.stdout[-3000:]
    error = r.stdout.strip().splitlines()[-1]
    free = _free_mb(card)
    assert error.startswith("edgelite deploy: error: ") and "not enough disk: the deploy needs " in error, error
    needed = int(error.split("needs ")[1].split()[0])
    assert needed > 300 and f"MB in {root} (" in error and "venv ~" in error, error
    assert abs(int(error.split(" MB free")[0].split()[-1]) - free) <= 2, error
    assert "free space there" in error and "--dir on a larger filesystem" in error, error
    assert "[3/7]" not in r.stdout  # refused before anything but the agent was copied
    assert sorted(os.listdir(root / "venvs")) == venvs and os.readlink(root / "current") == second
    assert wait_healthz(port)["frames"] > 0
