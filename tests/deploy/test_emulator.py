"""Deploy to the emulated Raspberry Pi: an arm64 Debian Bookworm rootfs under qemu-user-static with its
own sshd on 127.0.0.1 (scripts/pi-emulator.sh; `make pi-emulator` builds it once, ~7 min).

The aarch64 wheels (numpy, OpenCV, LiteRT for cp311 manylinux_2_36_aarch64) are downloaded on this
machine and pushed (--offline); the service runs the tiny model on a video file there and the host
reads its results over HTTP. Skips when the rootfs has not been built. About 2 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .rig import ROOT, free_port, wait_healthz

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(1200)]

PI_HOME = Path(os.environ.get("PI_HOME") or "~/.cache/edgelite/pi-emulator").expanduser()
DIR = "~/edgelite-test"


@pytest.fixture(scope="module")
def pi():
    if not (PI_HOME / "rootfs" / ".edgelite-ready").exists():
        pytest.skip(f"the emulated Pi is not built ({PI_HOME}/rootfs): run `make pi-emulator` once")
    if os.geteuid() != 0:
        pytest.skip("the Pi emulator needs root (chroot, mounts)")
    port = free_port()
    env = dict(os.environ, PI_PORT=str(port), PI_HOME=str(PI_HOME))
    script = ROOT / "scripts" / "pi-emulator.sh"
    r = subprocess.run(["sh", str(script), "start"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    conn = ["--host", f"pi@127.0.0.1:{port}", "--identity", str(PI_HOME / "id_ed25519"),
            "--known-hosts", str(PI_HOME / "known_hosts"), "--dir", DIR]
    try:
        yield conn
    finally:
        subprocess.run([sys.executable, "-m", "edgelite", "deploy", "--uninstall", *conn], capture_output=True,
                       timeout=300, cwd=ROOT)
        subprocess.run(["sh", str(script), "stop"], env=env, capture_output=True, timeout=120)


def edgelite_deploy(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgelite", "deploy", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=ROOT)


def test_deploy_to_the_emulated_pi(pi, tiny_bundle, video, wheel):
    http = free_port()
    t0 = time.monotonic()
    r = edgelite_deploy(str(tiny_bundle), *pi, "--offline", "--source", str(video), "--http", f"127.0.0.1:{http}",
                        "--wheel", str(wheel), "--health-timeout", "300", "--print-every", "10", "--json")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout
    out = r.stdout
    assert "aarch64 (64-bit)" in out and "Debian GNU/Linux 12 (bookworm)" in out
    assert "manylinux_2_36_aarch64, cp311" in out  # the device's wheels, fetched here and pushed
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] and result["health"]["frames"] >= 1
    body = wait_healthz(http, timeout=120, frames_above=5)  # the host reads the Pi's results
    assert body["model"] == "int8" and body["runtime"].startswith("ai_edge_litert")
    seen = set()
    deadline = time.monotonic() + 30
    while len(seen) < 4 and time.monotonic() < deadline:  # the clip cycles through the four colours
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/result.json", timeout=10) as resp:
            seen.add(json.loads(resp.read())["label"])
        time.sleep(0.25)
    assert len(seen) >= 3, seen  # right answers under qemu too (see QEMU_CPU in scripts/pi-emulator.sh)

    logs = edgelite_deploy(*pi, "--logs", "-n", "30", timeout=300)
    assert logs.returncode == 0
    lines = [ln for ln in logs.stdout.splitlines() if " frame " in ln]
    assert lines, logs.stdout
    status = edgelite_deploy(*pi, "--status", "--json", timeout=300)
    st = json.loads(status.stdout)
    assert st["state"]["ready"] and st["health"]["http"] == 200
    print(f"\nemulated Pi deploy: {took:.0f} s; first lines the device printed:")
    print("\n".join(logs.stdout.splitlines()[:12]))
