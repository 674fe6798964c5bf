"""`edgelite fleet` end to end: five real devices (each its own user and sshd on 127.0.0.1), real Ansible.

The tests run in file order like a fleet's life: a first rollout (canary, then batches of two), status,
the same bundle again (nothing restarts), an unhealthy host rolled back while --max-fail stops the later
batches, --limit and rollback, a rollout killed mid-way, and the playbook used with ansible-playbook
directly. Each checks what every device serves afterwards (its `current` release and its /healthz).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgelite.errors import EXIT_CHECKSUM, EXIT_FLEET, EXIT_USAGE
from edgelite.fleet.runner import ansible_playbook, playbook

from ..deploy.rig import healthz, wait_healthz
from .conftest import ROOT, env

pytestmark = pytest.mark.timeout(900)


def edgelite(*args: str, timeout: float = 600, merge: bool = True, **environ: str) -> subprocess.CompletedProcess:
    """`python -m edgelite ARGS` (with `environ` added); stderr joins stdout unless `merge` is False."""
    return subprocess.run([sys.executable, "-m", "edgelite", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if merge else subprocess.PIPE, text=True, timeout=timeout,
                          cwd=ROOT, env={**env(), **environ})


@pytest.fixture(scope="module")
def inv(fleet, video, tmp_path_factory):
    """inv(overrides) -> an inventory of the five devices (host vars per device name may be overridden)."""
    d = tmp_path_factory.mktemp("inventories")

    def make(name: str = "hosts", **overrides: dict):
        return fleet.inventory(d / f"{name}.ini", video, overrides)

    return make


def rollout(inventory, bundle, *extra: str, tmp_path, **environ: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "summary.json"
    out.unlink(missing_ok=True)
    r = edgelite("fleet", "deploy", str(bundle), "-i", str(inventory), "--offline", "--json", str(out), *extra,
                 **environ)
    return r, (json.loads(out.read_text()) if out.exists() else {})


def rows(summary: dict) -> dict[str, dict]:
    return {r["host"]: r for r in summary["hosts"]}


def bundle_of(device) -> str | None:
    rid = device.current()
    return device.release(rid)["bundle"] if rid else None


def bundle_id(path) -> str:
    import hashlib

    return hashlib.sha256((path / "edgelite.json").read_bytes()).hexdigest()[:16]


def test_first_rollout_canary_then_batches_of_two(fleet, inv, bundles, tmp_path):
    r, summary = rollout(inv(), bundles["a"], "--canary", "1", "--serial", "2", tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:]
    by = rows(summary)
    assert sorted(by) == [d.name for d in fleet.devices]
    assert {h["result"] for h in by.values()} == {"deployed"}, summary
    for d in fleet.devices:
        assert by[d.name]["before"] is None and by[d.name]["after"] == d.current()
        assert bundle_of(d) == bundle_id(bundles["a"])
        assert wait_healthz(d.http)["model"] == "int8"
    # the batches ran one after the other: [dev1] (canary), [dev2, dev3], [dev4, dev5]
    assert by["dev1"]["ended"] <= min(by["dev2"]["started"], by["dev3"]["started"])
    assert max(by["dev2"]["ended"], by["dev3"]["ended"]) <= min(by["dev4"]["started"], by["dev5"]["started"])
    assert "deployed" in r.stdout and "release before -> after" in r.stdout  # the summary table


def test_status_table(fleet, inv, bundles):
    r = edgelite("fleet", "status", "-i", str(inv()), "--json", merge=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = json.loads(r.stdout)  # Ansible's progress went to stderr
    manifest = json.loads((bundles["a"] / "edgelite.json").read_text())
    sha = next(m["sha256"] for m in manifest["models"] if m["name"] == "int8")[:8]
    import edgelite as el

    assert [row["host"] for row in table] == [d.name for d in fleet.devices]
    for row, d in zip(table, fleet.devices, strict=True):
        assert row["reachable"] and row["release"] == d.current()
        assert row["model"] == f"int8 {sha}" and row["service"] == "running" and row["health"] == "200 ok"
        assert row["fps"] > 0 and row["edgelite"] == el.__version__
    text = edgelite("fleet", "status", "-i", str(inv()))
    assert text.returncode == 0
    assert "host  reachable  release" in text.stdout and text.stdout.count("200 ok") == len(fleet.devices)
    logs = edgelite("fleet", "logs", "-i", str(inv()), "dev2", "-n", "30", merge=False)
    assert logs.returncode == 0, logs.stderr[-2000:]
    assert "frame " in logs.stdout and "fps" in logs.stdout  # the device's own result lines
    pattern = edgelite("fleet", "logs", "-i", str(inv()), "dev*")
    assert pattern.returncode == EXIT_USAGE and "name ONE inventory host" in pattern.stdout


def test_the_same_bundle_again_changes_and_restarts_nothing(fleet, inv, bundles, tmp_path):
    started = {d.name: d.service_started() for d in fleet.devices}
    current = {d.name: d.current() for d in fleet.devices}
    r, summary = rollout(inv(), bundles["a"], "--canary", "1", "--serial", "2", tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:]
    for name, row in rows(summary).items():
        assert row["result"] == "unchanged" and row["changed"] == 0, row
        assert row["before"] == row["after"] == current[name]
    assert {d.name: d.service_started() for d in fleet.devices} == started  # same pids, same start times
    assert "changed=0" in r.stdout and "changed=1" not in r.stdout


def test_unhealthy_host_rolls_back_and_max_fail_stops_the_later_batches(fleet, inv, bundles, tmp_path):
    """dev3's camera is missing: its new release never reports frames, so dev3 switches back by itself;
    with --max-fail 0% the batch [dev4, dev5] never starts."""
    old = {d.name: d.current() for d in fleet.devices}
    bad = inv("dev3-no-camera", dev3={"edgelite_source": "/nonexistent/camera.avi", "edgelite_health_timeout": 15})
    r, summary = rollout(bad, bundles["b"], "--canary", "1", "--serial", "2", "--max-fail", "0%", tmp_path=tmp_path)
    assert r.returncode == EXIT_FLEET, r.stdout[-4000:]
    by = rows(summary)
    assert by["dev1"]["result"] == by["dev2"]["result"] == "deployed"
    assert by["dev3"]["result"] == "rolled back" and by["dev3"]["after"] == old["dev3"]
    assert "was not healthy" in by["dev3"]["error"] and "switched back" in by["dev3"]["error"]
    assert by["dev4"]["result"] == by["dev5"]["result"] == "not started"
    devs = {d.name: d for d in fleet.devices}
    for name in ("dev1", "dev2"):
        assert bundle_of(devs[name]) == bundle_id(bundles["b"]) and by[name]["after"] == devs[name].current()
    for name in ("dev3", "dev4", "dev5"):  # the old release, still serving
        assert devs[name].current() == old[name] and bundle_of(devs[name]) == bundle_id(bundles["a"])
        assert wait_healthz(devs[name].http)["status"] == "ok"
    # the summary says who runs what, and the error says so too
    assert summary["releases"][old["dev3"]] == ["dev3"]
    assert "rolled back" in r.stdout and "not started" in r.stdout
    assert "did not reach 3 of 5 hosts" in r.stdout


def test_limit_and_fleet_rollback(fleet, inv, bundles, tmp_path):
    devs = {d.name: d for d in fleet.devices}
    before = {n: d.current() for n, d in devs.items()}
    r = edgelite("fleet", "rollback", "-i", str(inv()), "--limit", "dev1")
    assert r.returncode == 0, r.stdout[-3000:]
    assert bundle_of(devs["dev1"]) == bundle_id(bundles["a"]) and devs["dev1"].current() != before["dev1"]
    assert wait_healthz(devs["dev1"].http)["status"] == "ok"
    assert "rolled back" in r.stdout
    r, summary = rollout(inv(), bundles["b"], "--limit", "dev4", tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:]
    assert [row["host"] for row in summary["hosts"]] == ["dev4"]
    assert bundle_of(devs["dev4"]) == bundle_id(bundles["b"])
    for name in ("dev2", "dev3", "dev5"):  # untouched by --limit
        assert devs[name].current() == before[name]


def test_a_new_bundle_to_one_host_takes_a_few_ssh_round_trips(fleet, inv, bundles, tmp_path):
    """Issue #24: the fleet's overhead over `edgelite deploy` was its tasks' round trips (51 SSH sessions for
    a new bundle to a host whose venv is there; `edgelite deploy` opens 20). Now (17): the facts (the agent
    pushed only when it differs), one agent batch, the bundle as one archive, the source clip, one detached
    batch and its wait."""
    dev4 = fleet.devices[3]
    before = dev4.sessions()
    r, summary = rollout(inv(), bundles["c"], "--limit", "dev4", tmp_path=tmp_path)
    assert r.returncode == 0 and rows(summary)["dev4"]["result"] == "deployed", r.stdout[-3000:]
    assert bundle_of(dev4) == bundle_id(bundles["c"]) and wait_healthz(dev4.http)["status"] == "ok"
    assert dev4.sessions() - before <= 30, f"{dev4.sessions() - before} SSH sessions for one new bundle"


def test_a_rollout_killed_mid_way_leaves_every_host_serving(fleet, inv, bundles):
    """Kill `edgelite fleet deploy` (and its ansible-playbook, ssh, everything) as the canary's switch
    starts: every device then serves its old release or the new one - never none."""
    old = {d.name: d.current() for d in fleet.devices}
    canary_log = fleet.devices[0].root / "log" / "deploys.log"
    def logged() -> list[str]:
        return canary_log.read_text().splitlines() if canary_log.exists() else []

    logged_before = len(logged())
    cmd = [sys.executable, "-u", "-m", "edgelite", "fleet", "deploy", str(bundles["c"]), "-i", str(inv()),
           "--offline", "--canary", "1", "--serial", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env(),
                         start_new_session=True)
    seen = []
    try:
        for line in p.stdout:
            seen.append(line)
            if "Transaction - followed to its end" in line:  # the device-side transaction has started on the canary
                break
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(30)
    assert any("Transaction - followed" in ln for ln in seen), "".join(seen[-40:])
    new_bundle = bundle_id(bundles["c"])
    deadline = time.monotonic() + 180
    # the canary's detached commit goes on without us: wait until it has logged its verdict (on a loaded
    # machine its first line, "switch ...", can come after the kill)
    while not any(ln.split(" ", 2)[1] in ("healthy", "unhealthy") for ln in logged()[logged_before:]):
        assert time.monotonic() < deadline, "the canary's commit never ended: " + "\n".join(logged()[-5:])
        time.sleep(1)
    for d in fleet.devices:
        while True:  # the canary's detached commit goes on without us: wait for its end ("healthy ..." logged)
            rid = d.current()
            assert rid is not None, f"{d.name} serves nothing"
            last = (d.root / "log" / "deploys.log").read_text().splitlines()[-1]
            code, body = healthz(d.http)
            if " switch " not in last and code == 200 and (body or {}).get("frames", 0) > 0:
                break
            assert time.monotonic() < deadline, f"{d.name}: {last!r}, /healthz {code} {body}"
            time.sleep(1)
        assert rid == old[d.name] or d.release(rid)["bundle"] == new_bundle, d.name
    assert bundle_of(fleet.devices[0]) == new_bundle  # the canary's switch completed without us


def test_the_playbook_used_directly_with_ansible_playbook(fleet, inv, bundles, tmp_path):
    """`ansible-playbook -i hosts.ini $(edgelite fleet playbook) -e bundle=...`: no edgelite CLI around it;
    a preview beyond the loopback takes its token from an environment variable (never a command line)."""
    path = edgelite("fleet", "playbook").stdout.strip()
    assert path == str(playbook()) and os.path.isfile(path)
    dev5 = fleet.devices[4]
    hosts = inv("direct", dev5={"edgelite_http": f"0.0.0.0:{dev5.http}"})
    token = "fleet-secret-7f3a"
    cmd = [ansible_playbook(), "-i", str(hosts), path, "-e", f"bundle={bundles['b']}", "-e", "edgelite_offline=true"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900,
                       cwd=tmp_path, env={**env(), "EDGELITE_TOKEN": token})
    assert r.returncode == 0, r.stdout[-4000:]
    assert token not in r.stdout
    for d in fleet.devices:
        assert bundle_of(d) == bundle_id(bundles["b"]), d.name
        wait_healthz(d.http)
    rel = dev5.release(dev5.current())
    assert rel["token"] is True and token not in json.dumps(rel)
    release = dev5.root / "releases" / dev5.current()
    assert token not in (release / "run").read_text()  # the run script and the unit hold no secret ...
    assert f'EDGELITE_TOKEN="{token}"' in (release / "env").read_text()  # ... the 0600 env file does
    # a second run changes nothing
    again = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
                           cwd=tmp_path, env={**env(), "EDGELITE_TOKEN": token})
    assert again.returncode == 0 and "changed=0" in again.stdout and "changed=1" not in again.stdout, again.stdout[-3000:]


def test_dry_run_refuses_a_host_without_its_camera_and_changes_nothing(fleet, inv, bundles, tmp_path):
    current = {d.name: d.current() for d in fleet.devices}
    hosts = inv("dev2-video7", dev2={"edgelite_source": "/dev/video7"})
    r, summary = rollout(hosts, bundles["c"], "--dry-run", tmp_path=tmp_path)
    assert r.returncode == EXIT_FLEET, r.stdout[-3000:]
    by = rows(summary)
    assert by["dev2"]["result"] == "refused" and "no camera at /dev/video7" in by["dev2"]["error"]
    assert {by[n]["result"] for n in ("dev1", "dev3", "dev4", "dev5")} == {"would deploy"}
    assert {d.name: d.current() for d in fleet.devices} == current


def test_never_seen_hosts_are_accepted_as_edgelite_deploy_does(fleet, video, bundles, tmp_path):
    """A new user's inventory (nothing about host keys) and an empty known_hosts: the rollout accepts each new
    key and remembers it (accept-new, as `edgelite deploy`); --strict-host-key refuses with deploy's hint."""
    hosts = fleet.inventory(tmp_path / "new.ini", video, devices=fleet.devices[:2], pinned=False)
    known = tmp_path / "known_hosts"
    # Ansible's own SSH connections of the earlier tests (ControlPersist) would skip the host-key check
    fresh = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")}
    r, summary = rollout(hosts, bundles["a"], "--known-hosts", str(known), tmp_path=tmp_path, **fresh)
    assert r.returncode == 0, r.stdout[-4000:]
    assert {row["result"] for row in summary["hosts"]} <= {"deployed", "unchanged"}
    for d in fleet.devices[:2]:  # remembered (ssh may hash the names: ask ssh-keygen)
        assert subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{d.port}", "-f", str(known)],
                              capture_output=True).returncode == 0, d.name
    fresh = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp2")}
    r, summary = rollout(hosts, bundles["a"], "--known-hosts", str(tmp_path / "empty"), "--strict-host-key",
                         tmp_path=tmp_path, **fresh)
    assert r.returncode == EXIT_FLEET, r.stdout[-3000:]
    for row in summary["hosts"]:
        assert row["result"] == "unreachable" and "its host key is unknown or changed" in row["error"], row
        assert "--strict-host-key add it to known_hosts first (ssh-keyscan)" in row["error"]
    assert "--strict-host-key add it to known_hosts first" in r.stdout  # the summary's line for each host


def test_bad_input_is_one_clear_line(fleet, inv, bundles, tmp_path):
    r = edgelite("fleet", "deploy", str(bundles["a"]), "-i", str(tmp_path / "nope.ini"))
    assert r.returncode == EXIT_USAGE and "inventory" in r.stdout and "Traceback" not in r.stdout
    r = edgelite("fleet", "deploy", str(bundles["a"]), "-i", str(inv()), "--serial", "0")
    assert r.returncode == EXIT_USAGE and "--serial 0" in r.stdout
    corrupt = tmp_path / "corrupt"
    subprocess.run(["cp", "-r", str(bundles["a"]), str(corrupt)], check=True)
    data = bytearray((corrupt / "model_int8.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / "model_int8.tflite").write_bytes(bytes(data))
    r = edgelite("fleet", "deploy", str(corrupt), "-i", str(inv()))
    assert r.returncode == EXIT_CHECKSUM and "PLAY" not in r.stdout  # refused before Ansible starts


PI_HOME = Path(os.environ.get("PI_HOME") or "~/.cache/edgelite/pi-emulator").expanduser()


@pytest.mark.emulator
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not (PI_HOME / "rootfs" / ".edgelite-ready").exists(),
                    reason=f"the emulated Pi is not built ({PI_HOME}/rootfs): run `make pi-emulator` once")
def test_the_emulated_pi_joins_the_inventory(fleet, video, bundles, tmp_path):
    """The arm64 Pi (chroot + qemu-user, scripts/pi-emulator.sh) is one more host: its own aarch64
    wheelhouse is planned on the controller beside the x86_64 one; the five devices are left alone."""
    from .fleetkit import free_port

    port, http = free_port(), free_port()
    penv = {**env(), "PI_PORT": str(port), "PI_HOME": str(PI_HOME)}
    script = ROOT / "scripts" / "pi-emulator.sh"
    r = subprocess.run(["sh", str(script), "start"], env=penv, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    try:
        pi = (f"pi ansible_host=127.0.0.1 ansible_port={port} ansible_user=pi ansible_ssh_private_key_file="
              f"{PI_HOME / 'id_ed25519'} ansible_ssh_common_args='-o UserKnownHostsFile={PI_HOME / 'known_hosts'}' "
              f"edgelite_dir=~/edgelite-fleet edgelite_http=127.0.0.1:{http} edgelite_source={video} "
              "edgelite_health_timeout=300")
        hosts = fleet.inventory(tmp_path / "with-pi.ini", video, extra_hosts=[pi])
        current = {d.name: d.current() for d in fleet.devices}
        out = tmp_path / "summary.json"
        r = edgelite("fleet", "deploy", str(bundles["b"]), "-i", str(hosts), "--offline", "--canary", "0",
                     "--json", str(out), timeout=1700)
        assert r.returncode == 0, r.stdout[-4000:]
        by = rows(json.loads(out.read_text()))
        assert by["pi"]["result"] == "deployed" and by["pi"]["after"]
        assert {d.name: d.current() for d in fleet.devices} == current
        assert wait_healthz(http, timeout=120)["status"] == "ok"
    finally:
        edgelite("deploy", "--uninstall", "--host", f"pi@127.0.0.1:{port}", "--identity", str(PI_HOME / "id_ed25519"),
                 "--known-hosts", str(PI_HOME / "known_hosts"), "--dir", "~/edgelite-fleet", timeout=300)
        subprocess.run(["sh", str(script), "stop"], env=penv, capture_output=True, timeout=120)
