"""`edgelite deploy` end to end against a real sshd on 127.0.0.1 (an x86_64 "device" without systemd).

The tests share one device directory and run in file order, like a device's life: first deploy
(--offline), status/logs, a second bundle, rollback, refusals (smoke test, checksum), an unhealthy
release rolled back, deploys killed at several steps, scp, and uninstall. Each checks what is
serving on the device afterwards through its real /healthz.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edgelite.bundle import sha256_file
from edgelite.deploy.errors import EXIT_CHECKSUM, EXIT_CONNECT, EXIT_SMOKE, EXIT_UNHEALTHY

from .rig import free_port, healthz, wait_healthz

pytestmark = pytest.mark.timeout(600)

DIR = "~/edgelite"


@pytest.fixture(scope="module")
def http_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def dev(sshd, wheel, wheelhouse, video, http_port):
    """The device plus the options every deploy of this module uses."""

    class Dev:
        device = sshd
        home = sshd.home
        root = sshd.home / "edgelite"

        def deploy(self, bundle, *extra, port=None, wheel_file=None, timeout=300):
            return sshd.cli(str(bundle), *self.args(port, wheel_file), *extra, timeout=timeout, directory=DIR)

        def args(self, port=None, wheel_file=None):
            return ["--offline", "--source", str(video), "--http", f"127.0.0.1:{port or http_port}",
                    "--wheel", str(wheel_file or wheel), "--health-timeout", "60", "--print-every", "5"]

        def current(self) -> str | None:
            link = self.root / "current"
            return os.readlink(link).split("/")[-1] if link.is_symlink() else None

        def release(self, rid) -> dict:
            return json.loads((self.root / "releases" / rid / "release.json").read_text())

    yield Dev()
    sshd.cli("--uninstall", directory=DIR)


def test_first_deploy_offline(dev, tiny_bundle, http_port):
    r = dev.deploy(tiny_bundle, "--json")
    assert r.returncode == 0, r.stdout
    out = r.stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] and result["previous"] is None and result["health"]["frames"] >= 1
    assert result["unit"] == {"verified": True, "findings": None}  # systemd-analyze verify on the device
    for n, name in enumerate(["preflight", "package", "push", "install", "smoke test", "switch", "health"], 1):
        assert f"[{n}/7] {name}" in out, out
    assert "device wheels" in out and "(offline)" not in out  # --offline: the wheelhouse was pushed ...
    assert "(offline, uv)" in out  # ... and uv installed the pre-resolved list (no pip, no resolver)
    assert "sha256 of every file verified on the device" in out
    body = wait_healthz(http_port)  # the host reads the device's results
    assert body["model"] == "int8" and body["status"] == "ok"
    # --format auto: the smoke test measured the pick into DIR/cache, and the service started from it
    assert "  format auto: int8 x" in out and "fastest of" in out
    assert len(list((dev.root / "cache").glob("*.json"))) == 1
    assert body["pick"]["how"] == "cached" and body["pick"]["model"] == "int8"
    rid = dev.current()
    assert rid and rid in out
    rel = dev.release(rid)
    assert rel["source"].startswith(str(dev.root / "media")) and rel["source_is_file"]
    # the service runs as the deploy user, not root, detached from any SSH session
    state = json.loads((dev.root / "run" / "state.json").read_text())
    assert os.stat(f"/proc/{state['pid']}").st_uid == dev.device.uid != 0
    cmdline = open(f"/proc/{state['pid']}/cmdline", "rb").read().split(b"\0")
    assert b"run" in cmdline and b"--loop" in cmdline and b"--http" in cmdline
    unit = (dev.root / "edgelite.service").read_text()
    assert "Restart=on-failure" in unit and "WatchdogSec=" in unit and f"User={dev.device.user}" in unit
    assert "Type=notify" in unit and f'ExecStart=/bin/sh "{dev.root}/current/run"' in unit
    # the venv sees system site-packages (apt's picamera2 on a Pi)
    venv_cfg = (dev.root / "venvs" / rel["venv"] / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in venv_cfg


def test_status_and_logs(dev, http_port):
    r = dev.device.cli("--status", directory=DIR)
    assert r.returncode == 0, r.stdout
    assert "supervisor" in r.stdout and "running" in r.stdout and "HTTP 200 ok" in r.stdout
    assert f"{dev.current()} (current)" in r.stdout
    assert "  pick      int8 x" in r.stdout and ", cached: fastest of" in r.stdout  # which model runs, and why
    st = json.loads(dev.device.cli("--status", "--json", directory=DIR).stdout)
    assert st["current"]["id"] == dev.current() and st["health"]["http"] == 200
    assert st["state"]["ready"] is True  # READY=1 arrived over the supervisor's NOTIFY_SOCKET
    wait_healthz(http_port, frames_above=10)
    logs = dev.device.cli("--logs", "-n", "40", directory=DIR)
    assert logs.returncode == 0
    assert "supervisor: READY" in logs.stdout
    assert "frame " in logs.stdout and "fps" in logs.stdout  # the device's own result lines


def test_status_json_file_is_private_and_redacted(dev, tmp_path):
    """Issue #22, hole 6: `--status --json FILE` wrote the agent's reply raw (the camera password) to a
    0644 file. Now every source is redacted and the file is the owner's only."""
    rel = dev.root / "current" / "release.json"
    original = rel.read_text()
    data = json.loads(original)
    data["source"] = "rtsp://admin:p@ssw0rd@cam:554/s?user=admin&pwd=hunter2"
    rel.write_text(json.dumps(data))
    try:
        out = tmp_path / "status.json"
        r = dev.device.cli("--status", "--json", str(out), directory=DIR)
        assert r.returncode == 0, r.stdout
        text = out.read_text()
        assert os.stat(out).st_mode & 0o777 == 0o600
        assert "ssw0rd" not in text and "hunter2" not in text and "admin:***@cam:554" in text, text
        assert "ssw0rd" not in r.stdout and "hunter2" not in r.stdout
    finally:
        rel.write_text(original)


def test_device_text_reaches_the_terminal_without_escape_sequences(dev):
    """Issue #22, hole 10: a line in the device's log that retitles the window and clears the screen comes
    back with its control characters shown as `?`, in `--logs` and in `--status --json` alike."""
    log = dev.root / "log" / "edgelite.log"
    with open(log, "a") as f:
        f.write("frame 999 \x1b]0;owned\x07\x1b[2J\r\x9bfake text\n")
    logs = dev.device.cli("--logs", "-n", "5", directory=DIR)
    # (the agent reads the log by lines, so the carriage return ends one there)
    assert logs.returncode == 0 and "frame 999 ?]0;owned??[2J" in logs.stdout and "?fake text" in logs.stdout, logs.stdout
    assert not any(c in logs.stdout for c in "\x1b\x07\r\x9b")


def test_second_bundle_reuses_the_venv(dev, tiny_bundle, bundle_v2, http_port):
    first = dev.current()
    r = dev.deploy(bundle_v2)
    assert r.returncode == 0, r.stdout
    assert "reused" in r.stdout
    second = dev.current()
    assert second != first and dev.release(second)["bundle"] != dev.release(first)["bundle"]
    wait_healthz(http_port)


def test_rollback_goes_back_one(dev, http_port):
    before = dev.current()
    releases = sorted(p.name for p in (dev.root / "releases").iterdir() if not p.name.endswith(".failed"))
    r = dev.device.cli("--rollback", directory=DIR)
    assert r.returncode == 0, r.stdout
    assert dev.current() == releases[releases.index(before) - 1]
    assert "rolled back" in r.stdout
    wait_healthz(http_port)


def test_broken_bundle_is_refused_by_the_smoke_test(dev, broken_bundle, http_port):
    before = dev.current()
    r = dev.deploy(broken_bundle)
    assert r.returncode == EXIT_SMOKE, r.stdout
    assert "smoke test failed" in r.stdout and "nothing was switched" in r.stdout
    assert dev.current() == before
    assert healthz(http_port)[0] == 200


def test_unhealthy_release_is_rolled_back(dev, broken_bundle, http_port):
    """Past the smoke test (skipped), the service cannot load the model: the device switches back by itself."""
    before = dev.current()
    r = dev.deploy(broken_bundle, "--no-smoke-test")
    assert r.returncode == EXIT_UNHEALTHY, r.stdout
    assert "was not healthy" in r.stdout and f"switched back to {before}" in r.stdout
    assert "healthy again" in r.stdout
    assert "edgelite run: error:" in r.stdout, r.stdout  # the service's own error, from its log
    assert dev.current() == before
    assert any(p.name.endswith(".failed") for p in (dev.root / "releases").iterdir())
    wait_healthz(http_port)


def test_checksum_mismatch_is_refused(dev, corrupt_bundle, http_port):
    before = dev.current()
    incoming = sorted(os.listdir(dev.root / "bundles"))
    r = dev.deploy(corrupt_bundle)
    assert r.returncode == EXIT_CHECKSUM, r.stdout
    assert "fails its checksum" in r.stdout and "[1/7]" not in r.stdout  # refused before touching the device
    assert dev.current() == before and sorted(os.listdir(dev.root / "bundles")) == incoming
    assert healthz(http_port)[0] == 200


def test_device_side_checksum(dev, tiny_bundle):
    """The device verifies what it received: a bit flipped on its copy (same size and mtime, so rsync's
    quick check would not notice) is caught by the agent's `verify` and repaired by the next deploy."""
    rel = dev.release(dev.current())
    copy = dev.root / "bundles" / rel["bundle"] / "model_int8.tflite"
    st = copy.stat()
    data = bytearray(copy.read_bytes())
    data[100] ^= 0x01
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = dev.device.ssh(f"python3 {DIR}/agent.pyz", check=False,
                       input=json.dumps({"command": "verify", "dir": DIR, "path": str(copy.parent)}))
    assert r.returncode == EXIT_CHECKSUM
    reply = json.loads(r.stdout)  # the one JSON reply, nothing else on stdout
    assert reply["ok"] is False and reply["exit_code"] == EXIT_CHECKSUM
    assert "model_int8.tflite fails its sha256 check" in r.stdout
    assert any("model_int8.tflite fails its sha256 check" in p for p in reply["problems"])
    bundle = tiny_bundle if rel["meta"]["bundle_path"] == str(tiny_bundle.resolve()) else None
    if bundle is None:
        pytest.skip("the current release is not the tiny bundle")
    r = dev.deploy(bundle)
    assert r.returncode == 0, r.stdout
    assert "was damaged" in r.stdout and "re-sending" in r.stdout
    assert sha256_file(copy) == sha256_file(tiny_bundle / "model_int8.tflite")


def _deploy_until(dev, bundle, marker: str, *, delay: float = 0.0, wheel_file=None) -> tuple[str, int]:
    """Start a deploy and SIGKILL it `delay` s after it prints `marker`; (output so far, exit status)."""
    p = dev.device.popen(str(bundle), *dev.args(wheel_file=wheel_file), directory=DIR)
    out = []
    for line in p.stdout:
        out.append(line)
        if line.startswith(marker):
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            break
    p.wait(30)
    return "".join(out), p.returncode


@pytest.mark.parametrize("marker,delay", [("[3/7] push", 0.0), ("[4/7] install", 0.3), ("[5/7] smoke test", 0.2)])
def test_killed_deploy_leaves_the_old_release_serving(dev, bundle_v2, wheel_b, http_port, marker, delay):
    """SIGKILL the workstation's deploy half-way: during the push, in the middle of a fresh venv's install (a
    rebuilt wheel; uv installs it in about a second here, so the kill comes 0.3 s in), and during the smoke test. Nothing was switched; the old release serves."""
    before = dev.current()
    releases = sorted(os.listdir(dev.root / "releases"))
    frames = wait_healthz(http_port)["frames"]
    out, code = _deploy_until(dev, bundle_v2, marker, delay=delay, wheel_file=wheel_b)
    assert code == -signal.SIGKILL, out
    assert marker in out and "[6/7]" not in out
    time.sleep(1)
    assert dev.current() == before
    assert sorted(os.listdir(dev.root / "releases")) == releases  # not even a release was written
    body = wait_healthz(http_port, frames_above=frames)  # still classifying: the frame count moved on
    assert body["release"] == before  # /healthz names the release serving (#11: no source there any more)


def test_killed_during_the_switch_finishes_on_the_device(dev, bundle_v2, http_port):
    """Killed once the device-side switch has begun (its first line reached us), the transaction still
    completes on the device by itself: the new release, health-checked."""
    before = dev.current()
    out, code = _deploy_until(dev, bundle_v2, "  switch: current -> releases/")
    assert code == -signal.SIGKILL
    rid = out.split("[6/7] switch: current -> releases/")[1].split(",")[0]
    deadline = time.monotonic() + 60
    result = dev.root / "run" / f"commit-{rid}.json"
    while not result.exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert json.loads(result.read_text())["ok"] is True
    assert dev.current() == rid != before
    wait_healthz(http_port)
    # whatever the killed deploys left half-done (a venv without .ready) went with this healthy switch
    assert all((p / ".ready").exists() for p in (dev.root / "venvs").iterdir())


def test_scp_when_there_is_no_rsync(dev, tiny_bundle, http_port):
    r = dev.deploy(tiny_bundle, "--transfer", "scp")
    assert r.returncode == 0, r.stdout
    assert "(scp)" in r.stdout
    wait_healthz(http_port)


def test_no_service_switches_without_restarting(dev, bundle_v2, http_port):
    before = dev.current()
    pid = json.loads((dev.root / "run" / "state.json").read_text())["pid"]
    r = dev.deploy(bundle_v2, "--no-service")
    assert r.returncode == 0, r.stdout
    assert "service not managed (--no-service)" in r.stdout
    assert dev.current() != before
    assert json.loads((dev.root / "run" / "state.json").read_text())["pid"] == pid  # not restarted
    wait_healthz(http_port)


def test_token_and_source_from_a_file_and_the_environment_never_reach_a_command_line(dev, tiny_bundle, wheel, video,
                                                                                    http_port, tmp_path):
    """Issue #22, hole 7: --http beyond the loopback with the token from --token-file and the source from
    $EDGELITE_SOURCE: neither is in the service's command line (`ps`), its run script or the unit; both are in
    the release's env file, 0600 (the unit's EnvironmentFile=); without any token it is one line."""
    token = "tok-5Jq2-never-in-ps"
    (tmp_path / "token").write_text(token + "\n")
    common = ["--offline", "--http", f"0.0.0.0:{http_port}", "--wheel", str(wheel), "--health-timeout", "60"]
    r = dev.device.cli(str(tiny_bundle), *common, directory=DIR)
    assert r.returncode == 2 and "$EDGELITE_TOKEN" in r.stdout and "--token-file" in r.stdout, r.stdout
    r = dev.device.cli(str(tiny_bundle), *common, "--token-file", str(tmp_path / "token"), directory=DIR,
                       environ={"EDGELITE_SOURCE": str(video)})
    assert r.returncode == 0, r.stdout
    assert token not in r.stdout
    wait_healthz(http_port)
    rid = dev.current()
    rel = dev.release(rid)
    assert rel["source"].startswith(str(dev.root / "media")) and rel["token"] is True  # the clip, pushed
    state = json.loads((dev.root / "run" / "state.json").read_text())
    cmdline = open(f"/proc/{state['pid']}/cmdline", "rb").read().decode()
    run = (dev.root / "releases" / rid / "run").read_text()
    unit = (dev.root / "edgelite.service").read_text()
    for text in (cmdline, run, unit):
        assert token not in text and rel["source"] not in text, text
    env = dev.root / "releases" / rid / "env"
    assert os.stat(env).st_mode & 0o777 == 0o600
    assert f'EDGELITE_TOKEN="{token}"' in env.read_text() and f'EDGELITE_SOURCE="{rel["source"]}"' in env.read_text()
    assert f"EnvironmentFile=-{dev.root}/current/env" in unit
    # the process did get them: the preview asks for the token
    environ = open(f"/proc/{state['pid']}/environ", "rb").read().split(b"\0")
    assert f"EDGELITE_TOKEN={token}".encode() in environ


def test_strict_host_key_and_wrong_key_are_refused(dev, tmp_path):
    d = dev.device

    def status(key, known_hosts, *extra):
        cmd = [sys.executable, "-m", "edgelite", "deploy", "--status", "--host", d.host, "--identity", str(key),
               "--known-hosts", str(known_hosts), "--dir", DIR, *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    r = status(d.key, empty, "--strict-host-key")  # an unknown device: refused, never trusted blindly
    assert r.returncode == EXIT_CONNECT, r.stdout + r.stderr
    assert "host key" in r.stderr and empty.read_text() == ""
    r = status(d.key, empty)  # the default, accept-new: remembered on first contact
    assert r.returncode == 0, r.stderr
    assert "ssh-ed25519" in empty.read_text()
    assert status(d.key, empty, "--strict-host-key").returncode == 0  # now it is known
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    r = status(other, d.known_hosts)
    assert r.returncode == EXIT_CONNECT
    assert "key was refused" in r.stderr and "--identity" in r.stderr


def test_uninstall(dev, http_port):
    r = dev.device.cli("--uninstall", directory=DIR)
    assert r.returncode == 0, r.stdout
    assert not dev.root.exists()
    time.sleep(0.5)
    assert healthz(http_port)[0] is None  # the service is gone
    r = dev.device.cli("--status", directory=DIR)
    assert r.returncode == 2 and "nothing deployed" in r.stdout
