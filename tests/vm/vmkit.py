"""The emulated Pi VM as the tests see it: boot it (scripts/pi-vm.sh start), talk to it over SSH, deploy to it.

Everything is a real process: qemu-system-aarch64 with Debian's kernel and systemd, OpenSSH,
`python -m edgelite deploy`. Nothing here imports edgelite beyond the CLI it runs.

Which Pi: PI_OS=trixie (default; Raspberry Pi OS 13, Python 3.13, apt numpy 2.2, booted as a Pi 5's
Cortex-A76) or PI_OS=bookworm (12, Python 3.11, numpy 1.24, a Pi 4's Cortex-A72); PI_CPU overrides the CPU.
`make test-device` runs this folder once per OS.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
SCRIPT = ROOT / "scripts" / "pi-vm.sh"
HOME = Path(os.environ.get("PI_VM_HOME") or "~/.cache/edgelite/pi-vm").expanduser()
#: the OS release the VM runs and the CPU qemu models (scripts/pi-vm.sh's defaults)
PI_OS = os.environ.get("PI_OS") or "trixie"
PI_CPU = os.environ.get("PI_CPU") or {"trixie": "cortex-a76", "bookworm": "cortex-a72"}.get(PI_OS, "")
#: per OS: its Python and apt numpy (the Debian release's packages), what the tests expect to find
RELEASES = {"trixie": {"python": "3.13", "numpy": "2.2"}, "bookworm": {"python": "3.11", "numpy": "1.24"}}
IMAGE = HOME / PI_OS  # base.img, vmlinuz, initrd.img, host_key.pub, image.ready, known_hosts-PORT
DIR = "~/edgelite"  # the deploy directory on the VM (the default a user gets)
HEALTH = "127.0.0.1:8080"  # the service's preview/health address inside the VM (the deploy default)
#: where the guest reaches the host's broker (scripts/pi-vm.sh PI_VM_BROKER: guestfwd -> 127.0.0.1:broker)
BROKER_IN_GUEST = "10.0.2.100:1883"
MQTT_PREFIX = "edgelite/vm"  # the session's service publishes under it

#: figures measured by the tests (seconds), printed at the end of the session
TIMINGS: dict[str, float] = {}


def image_ready() -> str | None:
    """Why the VM tests cannot run here, or None when they can."""
    if PI_OS not in RELEASES:
        return f"PI_OS={PI_OS}: trixie or bookworm"
    if not (IMAGE / "image.ready").exists():
        return (f"the {PI_OS} Pi VM image is not built ({IMAGE}/image.ready missing): `PI_OS={PI_OS} make pi-vm` "
                "builds it once (~7-15 min)")
    if os.geteuid() != 0:
        return "the Pi VM tests run scripts/pi-vm.sh as root"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return e


class VM:
    """One booted VM: its forwarded SSH port, the key, known_hosts (written from the image's host key), and
    `broker`: the host port of an MQTT broker (tests/device/mqttkit.Broker) the guest reaches at
    BROKER_IN_GUEST, or None."""

    def __init__(self, port: int, http: int, broker: int | None = None):
        self.port, self.http, self.broker = port, http, broker
        self.key = HOME / "id_ed25519"
        self.known_hosts = IMAGE / f"known_hosts-{port}"
        self.boot_seconds = 0.0

    def script(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        e = dict(os.environ, PI_VM_HOME=str(HOME), PI_VM_PORT=str(self.port), PI_VM_HTTP=str(self.http),
                 PI_OS=PI_OS, PI_CPU=PI_CPU, **({"PI_VM_BROKER": str(self.broker)} if self.broker else {}))
        return subprocess.run(["sh", str(SCRIPT), *args], env=e, capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        t0 = time.monotonic()
        r = self.script("start")
        assert r.returncode == 0, r.stderr[-3000:]
        self.boot_seconds = time.monotonic() - t0

    def stop(self) -> None:
        self.script("stop", timeout=120)

    def cut(self) -> None:
        """A power cut: qemu killed -9, so what the guest had not written out is lost; its disk is kept."""
        r = self.script("cut", timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]

    def boot(self) -> float:
        """Power on again after `cut`: the same disk, as the cut left it; seconds to SSH."""
        t0 = time.monotonic()
        r = self.script("boot")
        assert r.returncode == 0, r.stderr[-3000:]
        return time.monotonic() - t0

    @property
    def host(self) -> str:
        return f"pi@127.0.0.1:{self.port}"

    def ssh(self, command: str, check: bool = True, timeout: float = 180, input: str | None = None) -> subprocess.CompletedProcess:
        cmd = ["ssh", "-p", str(self.port), "-i", str(self.key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
               "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
               "pi@127.0.0.1", command]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"ssh {command!r} exited {r.returncode}: {r.stderr.strip()[-1500:]}")
        return r

    def reachable(self) -> bool:
        try:
            return self.ssh("true", check=False, timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def wait_ssh(self, timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.reachable():
                return time.monotonic() - t0
            time.sleep(1)
        raise AssertionError(f"no SSH from the VM within {timeout:.0f} s")

    # -- the edgelite service -------------------------------------------------------------------
    def conn(self) -> list[str]:
        return ["--host", self.host, "--identity", str(self.key), "--known-hosts", str(self.known_hosts),
                "--dir", DIR]

    def deploy(self, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
        """`python -m edgelite deploy ARGS --host ... --identity ... --known-hosts ...`; stdout+stderr in .stdout."""
        cmd = [sys.executable, "-m", "edgelite", "deploy", *args, *self.conn()]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              cwd=ROOT, env=env())

    def unit(self) -> dict[str, str]:
        """`systemctl show edgelite` properties the tests look at."""
        out = self.ssh("systemctl show edgelite.service -p ActiveState,SubState,MainPID,NRestarts,"
                       "ExecMainStatus,UnitFileState,Result").stdout
        return dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)

    def healthz(self) -> tuple[int | None, dict]:
        """The service's /healthz, read inside the VM (the preview listens on the VM's loopback)."""
        code = ("import json, urllib.request, urllib.error\n"
                "try:\n"
                f"    r = urllib.request.urlopen('http://{HEALTH}/healthz', timeout=5); print(r.status); print(r.read().decode())\n"
                "except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode() or '{}')\n"
                "except OSError:\n    print(0); print('{}')\n")
        r = self.ssh(f"python3 -c {shlex.quote(code)}", check=False, timeout=60)
        lines = r.stdout.strip().splitlines()
        if r.returncode != 0 or len(lines) < 2:
            return None, {}
        try:
            return (int(lines[0]) or None), json.loads(lines[1])
        except ValueError:
            return None, {}

    def frames(self) -> int:
        code, body = self.healthz()
        return int(body.get("frames") or 0) if code == 200 else -1

    def wait_frames_above(self, n: int, timeout: float) -> float:
        """Seconds until /healthz reports more than n frames (status 200)."""
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < timeout:
            code, body = self.healthz()
            last = (code, body)
            if code == 200 and int(body.get("frames") or 0) > n:
                return time.monotonic() - t0
            time.sleep(1)
        raise AssertionError(f"/healthz did not pass {n} frames within {timeout:.0f} s (last: {last})")

    def journal(self, since: str, grep: str | None = None) -> list[str]:
        cmd = f"journalctl -u edgelite.service --no-pager -o cat --since {shlex.quote(since)}"
        lines = self.ssh(cmd, check=False).stdout.splitlines()
        return [ln for ln in lines if grep is None or grep in ln]

    def now(self) -> str:
        return self.ssh("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()


def wait_until(predicate, timeout: float, step: float = 1.0, what: str = "condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = predicate()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def last_json(text: str) -> dict:
    for ln in reversed(text.strip().splitlines()):
        if ln.startswith("{"):
            return json.loads(ln)
    raise AssertionError(f"no JSON line in: {text[-2000:]}")
