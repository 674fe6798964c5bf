"""Issue #22 on the emulated Pi: the deployed unit runs sandboxed (`systemd-analyze security` <= 4.9 on the
device) and still does its job — vivid's camera frames classified, /healthz and the preview page answering,
low-confidence frames saved into the deploy folder, watchdog pings arriving, results published to an MQTT
broker on the host (through pi-vm.sh's PI_VM_BROKER relay) — while the rest of the home is
read-only to it. And systemd itself runs the unit of every hostile folder name from the same renderer.

Uses the session's `deployed` service (tests/vm/conftest.py: --source /dev/video0 --save-uncertain) and
leaves it running.
"""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest

from edgelite.deploy.agent.unit import render_unit
from tests.deploy.rig import hostile_names
from tests.device.mqttkit import PASSWORD, Subscriber

from .vmkit import DIR, HEALTH, MQTT_PREFIX, wait_until

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

PAGE = ("import urllib.request as u\n"
        f"r = u.urlopen('http://{HEALTH}/', timeout=10); print(r.status, r.headers.get_content_type())\n")


def show(vm, *props: str) -> dict[str, str]:
    out = vm.ssh(f"systemctl show edgelite.service -p {','.join(props)}").stdout
    return dict(ln.split("=", 1) for ln in out.splitlines() if "=" in ln)


def test_the_deployed_service_runs_sandboxed_and_still_works(vm, deployed):
    out = vm.ssh("systemd-analyze security edgelite.service --no-pager", check=False).stdout
    m = re.search(r"Overall exposure level for edgelite.service: ([0-9.]+)", out)
    assert m and float(m.group(1)) <= 4.9, out[-3000:]
    print(f"\nsystemd-analyze security edgelite.service on the VM: {m.group(1)}")
    p = show(vm, "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateUsers", "DevicePolicy",
             "MemoryDenyWriteExecute", "NoNewPrivileges", "MainPID", "WatchdogUSec")
    assert (p["ProtectSystem"], p["ProtectHome"], p["DevicePolicy"]) == ("strict", "read-only", "closed"), p
    assert p["PrivateTmp"] == p["PrivateUsers"] == p["MemoryDenyWriteExecute"] == p["NoNewPrivileges"] == "yes", p
    status = vm.ssh(f"sudo -n cat /proc/{p['MainPID']}/status").stdout
    assert re.search(r"^CapBnd:\s+0+$", status, re.M) and re.search(r"^Seccomp:\s+2$", status, re.M), status

    # the camera (V4L2 through DeviceAllow= + the video group): frames classified, in the journal too
    vm.wait_frames_above(5, timeout=180)
    journal = vm.ssh("journalctl -u edgelite.service --no-pager -n 50 -o cat").stdout
    assert re.search(r"^frame +\d+ +(red|green|blue|yellow) [0-9.]+", journal, re.M), journal[-2000:]
    # the preview port: /healthz (vm.frames above) and the page
    assert vm.ssh(f"python3 -c {shlex.quote(PAGE)}").stdout.split() == ["200", "text/html"]

    # --save-uncertain: frames land in the deploy folder (ReadWritePaths=), the service's user's alone
    home = vm.ssh("echo $HOME").stdout.strip()
    root = DIR.replace("~", home, 1)
    try:
        listing = wait_until(lambda: vm.ssh(f"ls -l {root}/frames | grep '\\.jpg$'", check=False).stdout,
                             timeout=180, what="a saved frame in the deploy folder")
    except AssertionError as e:
        why = vm.ssh(f"df -m {root}; ls -la {root} {root}/frames; cat {root}/current/run; "
                     "journalctl -u edgelite.service --no-pager -o cat | grep -v '^frame ' | tail -40", check=False)
        raise AssertionError(f"{e}\n{why.stdout[-4000:]}{why.stderr[-1000:]}") from None
    assert listing.startswith("-rw------- "), listing
    # a whole camera picture (OpenCV 4.11 on Bookworm handed vivid's BGR24 frames back as one flat row)
    shape = vm.ssh(f"python3 -c 'import cv2, glob; print(*cv2.imread(sorted(glob.glob(\"{root}/frames/*.jpg\"))[0]).shape)'")
    h, w, c = map(int, shape.stdout.split())
    assert h >= 240 and w >= 320 and c == 3, shape.stdout

    # the walls: in the service's mount namespace the rest of the home and /usr are read-only, /tmp is its own
    def inside(cmd: str):
        return vm.ssh(f"sudo -n nsenter -t {p['MainPID']} -m sh -c {shlex.quote(cmd)}", check=False)

    for path in (f"{home}/planted", "/usr/local/planted"):
        r = inside(f"touch {path}")
        assert r.returncode != 0 and "Read-only file system" in r.stderr, (path, r.stderr)
    assert inside(f"touch {root}/frames/.probe && rm {root}/frames/.probe").returncode == 0
    vm.ssh("touch /tmp/host-side-file")
    assert inside("test -e /tmp/host-side-file").returncode == 1  # PrivateTmp=yes

    # sd_notify through the sandbox: the watchdog's pings keep arriving (WatchdogSec=30)
    assert p["WatchdogUSec"] == "30s", p
    first = show(vm, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
    wait_until(lambda: show(vm, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"] != first, timeout=45,
               step=2, what="a watchdog ping from the sandboxed service")
    assert show(vm, "NRestarts")["NRestarts"] == "0"

    # MQTT through the sandbox (AF_INET; paho-mqtt installed by the deploy, the password from its 0600 env
    # file): live results reach the broker on the host, and the password is in no command line or log line
    if not vm.broker:
        pytest.skip("no mosquitto on this machine: the MQTT part needs it (apt install mosquitto)")
    sub = Subscriber(vm.broker, f"{MQTT_PREFIX}/#")
    try:
        live = sub.wait_for(lambda m: m[0] == f"{MQTT_PREFIX}/state" and not m[3], timeout=180)
        assert live, f"no live state from the sandboxed service at the host's broker; got {sub.messages[:5]}"
        state = json.loads(live[-1][1])
        assert state["label"] in ("red", "green", "blue", "yellow") and state["frame"] > 0, state
        assert sub.wait_for(lambda m: m[0] == f"{MQTT_PREFIX}/availability" and m[1] == "online", timeout=10)
        print(f"\nMQTT from the sandboxed service: {len(sub.messages)} messages at the host's broker")
    finally:
        sub.close()
    seen = vm.ssh("ps -eww -o args; journalctl -u edgelite.service --no-pager -o cat", check=False).stdout
    assert "--mqtt" in seen and PASSWORD not in seen


# run by each test unit: it proves its folder (ExecStart=), its cwd (WorkingDirectory=), that the folder is
# writable (ReadWritePaths= under ProtectHome=read-only) and that the folder next to it is not
RUN = """#!/bin/sh
here=$(dirname "$0")/..
pwd > "$here/proof"
if touch "$here/../outside" 2>/dev/null; then echo outside-writable >> "$here/proof"; fi
exec sleep 300
"""

MAKE = """import json, os, sys
for i, (root, text) in enumerate(json.load(sys.stdin)):
    os.makedirs(root + "/current", exist_ok=True)
    with open(root + "/current/run", "w") as f:
        f.write(sys.argv[1])
    os.chmod(root + "/current/run", 0o755)
    with open(f"/tmp/edgelite-q{i}.service", "w") as f:
        f.write(text)
"""

CHECK = """import json, sys
out = []
for root in json.load(sys.stdin):
    try:
        out.append(open(root + "/proof").read())
    except OSError as e:
        out.append(str(e))
print(json.dumps(out))
"""


def test_units_of_hostile_folder_names_run_under_systemd(vm, deployed):
    home = vm.ssh("echo $HOME").stdout.strip()
    # the mixes and the names systemd reads specially (tests/deploy/test_unit_sandbox.py verifies all of them;
    # starting ~100 units at once overwhelms an emulated Pi)
    picked = hostile_names()[-10:] + ['trail\\', "trail ", 'a"b', "a'b", "a\tb"]
    roots = [f"{home}/hostile/{i}/{name}" for i, name in enumerate(picked)]
    units = [(root, render_unit(root, "pi", f"edgelite-q{i}")) for i, root in enumerate(roots)]
    names = " ".join(f"edgelite-q{i}.service" for i in range(len(roots)))
    vm.ssh(f"python3 -c {shlex.quote(MAKE)} {shlex.quote(RUN)}", input=json.dumps(units))
    vm.ssh(f"sudo -n sh -c 'mv /tmp/edgelite-q*.service /etc/systemd/system/ && systemctl daemon-reload' && "
           f"sudo -n systemctl start --no-block {names}")
    t0 = time.monotonic()
    try:
        def proofs():
            r = vm.ssh(f"python3 -c {shlex.quote(CHECK)}", input=json.dumps(roots))
            got = json.loads(r.stdout)
            return got if all(not g.startswith("[Errno") for g in got) else None

        try:
            got = wait_until(proofs, timeout=300, step=3, what="every hostile-folder unit running")
        except AssertionError:
            failed = vm.ssh(f"systemctl --no-pager --failed --plain {names}", check=False).stdout
            raise AssertionError(f"not every unit ran: {failed[-3000:]}") from None
        bad = [(root, proof) for root, proof in zip(roots, got, strict=True) if proof != f"{root}/current\n"]
        assert not bad, bad[:5]
        print(f"\n{len(roots)} hostile-folder units ran under systemd in {time.monotonic() - t0:.0f} s")
    finally:
        vm.ssh(f"sudo -n systemctl stop {names}; sudo -n rm -f /etc/systemd/system/edgelite-q*.service; "
               f"sudo -n systemctl daemon-reload; rm -rf {home}/hostile", check=False, timeout=300)
