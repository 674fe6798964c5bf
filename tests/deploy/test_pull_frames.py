"""`edgelite deploy --pull-frames DIR` against a real sshd on 127.0.0.1: the frames a device kept in
DIR/frames come over (rsync, or a tar stream without it), leave the device, and a half-written frame stays;
and end to end, a service deployed with --save-uncertain keeps frames that --pull-frames then fetches."""

from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.timeout(600)

DIR = "~/edgelite-frames"


def _put_frames(sshd, names: list[str], root: str = "edgelite-frames") -> dict[str, bytes]:
    """Frames as the device's service leaves them (owned by the device user), plus a frame still being written."""
    folder = sshd.home / root / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate(names):
        img = np.full((48, 64, 3), 40 * i % 256, np.uint8)
        data = cv2.imencode(".jpg", img)[1].tobytes()
        (folder / name).write_bytes(data)
        written[name] = data
    (folder / ".partial.jpg.part").write_bytes(b"half a jpeg")
    for p in [sshd.home / root, folder, *folder.iterdir()]:
        os.chown(p, sshd.uid, sshd.uid)
    return written


@pytest.mark.parametrize("transfer", ["rsync", "scp"])
def test_pull_frames_moves_the_kept_frames_here_and_only_new_ones_next_time(sshd, tmp_path, transfer):
    first = _put_frames(sshd, ["20261130-101500-001_cat-0.41_dog-0.33_fox-0.10.jpg",
                               "20261130-101502-417_dog-0.52_cat-0.40_fox-0.05.jpg"])
    dest = tmp_path / "pulled"
    p = sshd.cli("--pull-frames", str(dest), "--transfer", transfer, directory=DIR)
    assert p.returncode == 0, p.stdout
    assert "pulled 2 frames" in p.stdout
    assert {f.name: f.read_bytes() for f in dest.iterdir()} == first  # byte for byte, no hidden .part
    device = sshd.home / "edgelite-frames" / "frames"
    assert sorted(f.name for f in device.iterdir()) == [".partial.jpg.part"]  # moved; the unfinished one stays
    # the service keeps saving; the next pull brings only what is new
    more = _put_frames(sshd, ["20261130-111500-000_fox-0.38_cat-0.30_dog-0.20.jpg"])
    p = sshd.cli("--pull-frames", str(dest), "--transfer", transfer, directory=DIR)
    assert p.returncode == 0 and "pulled 1 frames" in p.stdout, p.stdout
    assert sorted(f.name for f in dest.iterdir()) == sorted([*first, *more])


def test_pull_frames_without_a_frames_folder_says_to_deploy_with_save_uncertain(sshd, tmp_path):
    p = sshd.cli("--pull-frames", str(tmp_path / "x"), directory="~/no-such-edgelite")
    assert p.returncode == 2, p.stdout
    assert p.stdout.strip().splitlines()[-1].startswith("edgelite deploy: error: ")
    assert "deploy with --save-uncertain first" in p.stdout


def test_a_service_deployed_with_save_uncertain_keeps_frames_that_pull_frames_fetches(
        sshd, wheel, wheelhouse, video, tiny_bundle, tmp_path):
    from .rig import free_port, wait_healthz

    port = free_port()
    root = "~/edgelite-loop"
    try:
        # every int8 score is below 1.0: every frame is uncertain, so only the caps decide what is kept
        p = sshd.cli(str(tiny_bundle), "--offline", "--source", str(video), "--http", f"127.0.0.1:{port}",
                     "--wheel", str(wheel), "--health-timeout", "60", "--save-uncertain",
                     "--run-args", "--below 1.0 --max-per-hour 3", directory=root)
        assert p.returncode == 0, p.stdout
        wait_healthz(port, frames_above=10)
        frames = sshd.home / "edgelite-loop" / "frames"
        deadline = time.monotonic() + 30
        while len(list(frames.glob("*.jpg"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2.0)  # more than the 1 s gap between kept frames: a 4th would have appeared by now
        assert len(list(frames.glob("*.jpg"))) == 3  # the hourly cap holds on the device
        dest = tmp_path / "pulled"
        p = sshd.cli("--pull-frames", str(dest), directory=root)
        assert p.returncode == 0 and "pulled 3 frames" in p.stdout, p.stdout
        pulled = sorted(dest.glob("*.jpg"))
        assert len(pulled) == 3 and not list(frames.glob("*.jpg"))
        assert all(cv2.imread(str(f)) is not None for f in pulled)
    finally:
        sshd.cli("--uninstall", directory=root)


@pytest.mark.parametrize("transfer", ["rsync", "scp"])
def test_a_hostile_device_plants_nothing_but_plain_private_files(sshd, tmp_path, transfer):
    """Issue #22, hole 1: a compromised device's frames folder holds a setuid executable, a 0777 file and
    symlinks to this machine's files. Only regular files come over, each 0600 in 0700 folders."""
    good = _put_frames(sshd, ["20261201-090000-000_cat-0.41_dog-0.33_fox-0.10.jpg"], root=f"edgelite-hostile-{transfer}")
    folder = sshd.home / f"edgelite-hostile-{transfer}" / "frames"
    (folder / "suid.jpg").write_bytes(b"\x7fELF pretend")
    (folder / "suid.jpg").chmod(0o6755)
    (folder / "open.jpg").write_bytes(b"anyone may write")
    (folder / "open.jpg").chmod(0o777)
    (folder / "shadow.jpg").symlink_to("/etc/shadow")
    (folder / "sub").mkdir()
    (folder / "sub" / "passwd.jpg").symlink_to("/etc/passwd")
    (folder / "sub" / "ok.jpg").write_bytes(b"a frame")
    for p in [folder / "suid.jpg", folder / "open.jpg", folder / "sub", folder / "sub" / "ok.jpg"]:
        os.chown(p, sshd.uid, sshd.uid)
    for p in [folder / "shadow.jpg", folder / "sub" / "passwd.jpg"]:
        os.lchown(p, sshd.uid, sshd.uid)
    dest = tmp_path / "pulled"
    p = sshd.cli("--pull-frames", str(dest), "--transfer", transfer, directory=f"~/edgelite-hostile-{transfer}")
    assert p.returncode == 0, p.stdout
    got = {str(f.relative_to(dest)): f for f in dest.rglob("*")}
    assert set(got) == {*good, "suid.jpg", "open.jpg", "sub", "sub/ok.jpg"}, sorted(got)
    for name, f in got.items():
        st = os.lstat(f)
        assert not os.path.islink(f)
        want = 0o700 if f.is_dir() else 0o600
        assert st.st_mode & 0o7777 == want, (name, oct(st.st_mode))
    assert "pulled 4 frames" in p.stdout, p.stdout


@pytest.mark.parametrize("transfer", ["rsync", "scp"])
def test_a_pull_stops_at_max_files_and_the_next_one_brings_the_rest(sshd, tmp_path, transfer):
    """Issue #22, hole 1: counts and sizes capped. A device with more frames than one pull may take: the
    pull stops at --pull-max-files with one warning, and running it again brings the rest; a file too
    large to be a frame never comes."""
    root = f"edgelite-caps-{transfer}"
    frames = _put_frames(sshd, [f"20261204-12{i:04d}-000_cat-0.41.jpg" for i in range(120)], root=root)
    huge = sshd.home / root / "frames" / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(51 * 2**20)  # over the 50 MB per-file cap
    os.chown(huge, sshd.uid, sshd.uid)
    dest = tmp_path / "pulled"
    p = sshd.cli("--pull-frames", str(dest), "--transfer", transfer, "--pull-max-files", "50", directory=f"~/{root}")
    assert p.returncode == 0, p.stdout
    warning = [ln for ln in p.stdout.splitlines() if ln.startswith("warning: stopped pulling")]
    assert len(warning) == 1 and "run the same pull again for the rest" in warning[0], p.stdout
    first = {f.name for f in dest.iterdir()}
    assert len(first) == 50 and "at 50 files" in warning[0], (len(first), warning)
    said = p.stdout
    for _ in range(4):
        if {f.name for f in dest.iterdir()} == set(frames):
            break
        p = sshd.cli("--pull-frames", str(dest), "--transfer", transfer, "--pull-max-files", "50",
                     directory=f"~/{root}")
        assert p.returncode == 0, p.stdout
        said += p.stdout
    assert {f.name: f.read_bytes() for f in dest.iterdir()} == frames  # no huge.jpg, nothing lost
    # said by the pull that reached it (a capped pull stops listing, so not necessarily the first)
    assert any("left 1 files over 50 MB" in ln and "huge.jpg" in ln for ln in said.splitlines()), said
    assert huge.exists()  # left on the device, never removed unseen


def test_a_pull_cap_of_zero_is_one_line_that_says_what_to_give(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "edgelite", "deploy", "--host", "pi@127.0.0.1:1", "--pull-frames",
                        str(tmp_path / "x"), "--pull-max-files", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip() == "edgelite deploy: error: --pull-max-files 0: give a number above 0"
