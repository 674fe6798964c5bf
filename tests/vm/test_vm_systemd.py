"""Deploy to the VM for real: a systemd unit on vivid's /dev/video0, then freeze it, unplug its camera,
roll a bad release back and reboot the machine — and see it serve again each time, timed.

The tests run in file order on one deployment (the `deployed` fixture); each leaves the service healthy.
"""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest

from .vmkit import DIR, PI_OS, RELEASES, TIMINGS, last_json, wait_until

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]
LABELS = {"red", "green", "blue", "yellow"}
UNPLUG = "echo vivid.0 | sudo -n tee /sys/bus/platform/drivers/vivid/unbind >/dev/null"
REPLUG = "echo vivid.0 | sudo -n tee /sys/bus/platform/drivers/vivid/bind >/dev/null"


def current_release(vm) -> str:
    return vm.ssh(f"basename \"$(readlink {DIR}/current)\"").stdout.strip()


def test_deploy_installs_a_systemd_unit(vm, deployed):
    assert "aarch64 (64-bit)" in deployed and PI_OS in deployed, deployed
    assert re.search(rf"python +\S+ {RELEASES[PI_OS]['python']}\.\d+ ", deployed), deployed  # the OS's own Python
    result = last_json(deployed)
    assert result["ok"] and result["health"]["frames"] >= 1, result
    assert vm.ssh("systemctl is-active edgelite").stdout.strip() == "active"
    u = vm.unit()
    assert u["UnitFileState"] == "enabled" and u["SubState"] == "running", u
    user = vm.ssh("ps -o user= -p " + u["MainPID"]).stdout.strip()
    assert user == "pi"  # never root
    vm.wait_frames_above(5, timeout=120)


def test_the_source_reaches_the_service_through_its_environment_file(vm, deployed):
    """Issue #22, hole 7, under real systemd: the unit's EnvironmentFile= (the release's 0600 env file) gives
    the service EDGELITE_SOURCE; neither its command line nor its run script holds it."""
    pid = vm.unit()["MainPID"]
    env_file = f"{DIR}/current/env"
    assert vm.ssh(f"stat -L -c %a {env_file}").stdout.strip() == "600"
    # the session's service publishes MQTT too (tests/vm/conftest.py): its broker password is the other line
    from tests.device.mqttkit import MOSQUITTO, PASSWORD

    lines = sorted(vm.ssh(f"cat {env_file}").stdout.strip().splitlines())
    expected = [f'EDGELITE_MQTT_PASSWORD="{PASSWORD}"'] if MOSQUITTO else []
    assert lines == [*expected, 'EDGELITE_SOURCE="/dev/video0"'], lines
    shown = vm.ssh("systemctl show -p EnvironmentFiles edgelite.service").stdout
    assert "/edgelite/current/env (ignore_errors=yes)" in shown, shown
    cmdline = vm.ssh(f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout
    assert "edgelite run" in cmdline.replace("-m edgelite run", "edgelite run") and "/dev/video0" not in cmdline, cmdline
    assert "/dev/video0" not in vm.ssh(f"cat {DIR}/current/run").stdout
    environ = vm.ssh(f"sudo -n cat /proc/{pid}/environ | tr '\\0' '\\n'").stdout.splitlines()
    assert "EDGELITE_SOURCE=/dev/video0" in environ, environ


def test_logs_come_from_journald_and_status_reports_the_unit(vm, deployed):
    logs = vm.deploy("--logs", "-n", "40", timeout=300)
    assert logs.returncode == 0, logs.stdout
    frames = [ln for ln in logs.stdout.splitlines() if " frame " in ln]
    assert frames, logs.stdout
    journal = vm.ssh("journalctl -u edgelite.service --no-pager -n 200").stdout
    assert any(ln.split(" frame ", 1)[1] in journal for ln in frames), (frames[-3:], journal[-2000:])
    st = vm.deploy("--status", "--json", timeout=300)
    assert st.returncode == 0, st.stdout
    status = json.loads(st.stdout)
    text = json.dumps(status)
    assert '"systemd"' in text and "active/running" in text, text[:2000]
    assert status["health"]["http"] == 200


def test_camera_loop_on_the_v4l2_device(vm, deployed):
    """`edgelite run --source /dev/video0` and `--source 0`: OpenCV's V4L2 backend on vivid, JSON lines."""
    rel = json.loads(vm.ssh(f"cat {DIR}/current/release.json").stdout)
    py = f"{DIR}/venvs/{rel['venv']}/bin/python"
    bundle = f"{DIR}/bundles/{rel['bundle']}"
    vm.ssh("sudo -n systemctl stop edgelite")  # one process streams from a V4L2 device at a time
    try:
        fmt = vm.ssh("v4l2-ctl -d /dev/video0 --get-fmt-video").stdout
        probe = "import cv2; c = cv2.VideoCapture(0); print(c.getBackendName(), c.read()[0])"
        assert vm.ssh(f"{py} -c {shlex.quote(probe)}").stdout.split() == ["V4L2", "True"]
        for source in ("/dev/video0", "0"):
            r = vm.ssh(f"{py} -m edgelite run {bundle} --source {source} --max-frames 12 --json - -q",
                       check=False, timeout=300)
            assert r.returncode == 0, r.stderr[-2000:]
            lines = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
            assert len(lines) == 12, r.stdout[-2000:]
            for d in lines:
                assert d["label"] in LABELS and 0.0 <= d["score"] <= 1.0
                t = d["timings_ms"]
                assert set(t) >= {"capture", "preprocess", "inference", "postprocess"}, t
                assert all(0 <= v < 60_000 for v in t.values()), t
                assert t["inference"] > 0
            assert lines[-1]["fps"] > 0
        assert "Width/Height" in fmt, fmt
    finally:
        vm.ssh("sudo -n systemctl start edgelite")
    vm.wait_frames_above(2, timeout=180)


@pytest.mark.vm_long
def test_watchdog_restarts_a_frozen_service(vm, deployed):
    u = vm.unit()
    pid, restarts = u["MainPID"], int(u["NRestarts"])
    t0 = time.monotonic()
    vm.ssh(f"sudo -n kill -STOP {pid}")

    def restarted():
        v = vm.unit()
        return v["MainPID"] not in ("0", pid) and int(v["NRestarts"]) > restarts and v["ActiveState"] == "active"

    wait_until(restarted, timeout=240, step=2, what="systemd restarting the frozen service")
    t_restart = time.monotonic() - t0
    vm.wait_frames_above(0, timeout=240)
    TIMINGS["watchdog: SIGSTOP -> new process"] = t_restart
    TIMINGS["watchdog: SIGSTOP -> frames again"] = time.monotonic() - t0
    journal = vm.ssh("journalctl -u edgelite.service --no-pager -n 300").stdout
    assert "Watchdog timeout" in journal, journal[-2000:]


def test_camera_unplugged_then_back(vm, deployed):
    """vivid unbound (the camera gone, as a USB camera pulled out) and bound again within the retry window."""
    u = vm.unit()
    pid, restarts = u["MainPID"], int(u["NRestarts"])
    since = vm.now()
    vm.ssh(UNPLUG)
    try:
        wait_until(lambda: vm.journal(since, "reconnecting"), timeout=120, what="the loop reporting the lost camera")
    finally:
        t0 = time.monotonic()
        vm.ssh(REPLUG)
    before = max(vm.frames(), 0)
    vm.wait_frames_above(before, timeout=120)
    TIMINGS["camera back -> frames (no restart)"] = time.monotonic() - t0
    u = vm.unit()
    assert (u["MainPID"], int(u["NRestarts"])) == (pid, restarts), u  # resumed in the same process


@pytest.mark.vm_long
def test_camera_left_unplugged_exits_75_and_recovers(vm, deployed):
    restarts = int(vm.unit()["NRestarts"])
    since = vm.now()
    vm.ssh(UNPLUG)
    try:
        # --max-reconnects 5 with backoff 0.5 s .. : exit 75, and systemd's Restart= starts it again
        wait_until(lambda: int(vm.unit()["NRestarts"]) > restarts, timeout=300, step=2,
                   what="systemd restarting the service after exit 75")
        journal = "\n".join(vm.journal(since))
        assert "giving up" in journal and "status=75" in journal, journal[-3000:]
        time.sleep(5)  # the new process waits for the camera (it retries; the unit is not failed)
        assert vm.unit()["ActiveState"] in ("active", "activating"), vm.unit()
    finally:
        t0 = time.monotonic()
        vm.ssh(REPLUG)
    vm.wait_frames_above(0, timeout=300)
    TIMINGS["camera back after exit 75 -> frames"] = time.monotonic() - t0
    assert vm.unit()["ActiveState"] == "active"


@pytest.mark.vm_long
def test_a_release_that_cannot_run_is_rolled_back(vm, deployed, broken_bundle, wheel):
    good = current_release(vm)
    t0 = time.monotonic()
    r = vm.deploy(str(broken_bundle), "--offline", "--source", "/dev/video0", "--wheel", str(wheel),
                  "--no-smoke-test", "--health-timeout", "120")
    TIMINGS["rollback: bad deploy -> back on the good release"] = time.monotonic() - t0
    assert r.returncode == 6, r.stdout[-3000:]
    assert f"switched back to {good}" in r.stdout and "healthy again" in r.stdout, r.stdout[-3000:]
    assert current_release(vm) == good
    assert vm.ssh("systemctl is-active edgelite").stdout.strip() == "active"
    vm.wait_frames_above(2, timeout=120)


@pytest.mark.vm_long
def test_reboot_brings_the_same_release_back(vm, deployed):
    rid = current_release(vm)
    vm.ssh("sudo -n systemctl reboot", check=False, timeout=30)
    t0 = time.monotonic()
    wait_until(lambda: not vm.reachable(), timeout=120, step=1, what="the VM going down")
    vm.wait_ssh(timeout=600)
    TIMINGS["reboot: SSH again"] = time.monotonic() - t0
    vm.wait_frames_above(0, timeout=300)
    TIMINGS["reboot: /healthz green"] = time.monotonic() - t0
    assert vm.ssh("systemctl is-enabled edgelite").stdout.strip() == "enabled"
    assert current_release(vm) == rid
    st = json.loads(vm.deploy("--status", "--json", timeout=300).stdout)
    assert st["health"]["http"] == 200, st
    assert shlex.quote(rid) in json.dumps(st)
