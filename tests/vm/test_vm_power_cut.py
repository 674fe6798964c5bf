"""Power cuts on the emulated Pi: qemu killed -9 (the guest's unflushed page cache is lost, as when a Pi is
unplugged) at seeded random moments of a deploy that switches bundles and of steady running with
--save-uncertain writing frames; the same disk booted again each time.

Half the cuts land in deploys, spread evenly over the deploy's length (push, venv install, switch, restart,
health check): cut k of n at a random moment of the k-th n-th of a full deploy. Every third deploy cut is of a
release that cannot run (a model file that is not a model), cut between its restart and the end of the
rollback that follows (timed from the agent's `restart:` line): the window where a device could boot into a
release that never runs. `test_a_cut_while_a_broken_release_is_on_trial_boots_the_release_before` cuts at the
start of that window every time.

After every cut: the device serves the old release or the new one (never the broken one), healthy within the deploy's health timeout
(counted from SSH up; the table also has the time from power-on); the agent answers `--status`; `current` points at a complete release (release.json
reads, `run` is not empty, the bundle passes its sha256 check, the venv is marked ready); no saved frame is a
torn JPEG; and after a cut mid-deploy, the same deploy run again completes (the broken one: rolls back again,
exit 6, the old release healthy).

EDGELITE_CUT_SEED (default 23) and EDGELITE_CUTS (default 20, half in deploys, half in steady running) pick the
moments; EDGELITE_FAULTS_TABLE=FILE writes the table of moments and outcomes there (benchmarks/results/faults_power_cut.md, linked from faults.md).
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from .vmkit import DIR, PI_OS, ROOT, TIMINGS, env

pytestmark = [pytest.mark.vm, pytest.mark.vm_long, pytest.mark.timeout(5400)]

SEED = int(os.environ.get("EDGELITE_CUT_SEED") or 23)
CUTS = int(os.environ.get("EDGELITE_CUTS") or 20)
RESTART = r"^\s+restart: "  # the agent's line once `current` is switched and the service restarts on it
HEALTH_TIMEOUT = 180  # the deploys' --health-timeout: a device up again must be healthy within it
# frames saved often (every uncertain result, up to one a second) so that cuts land on frame writes
RUN_ARGS = "--below 1.0 --max-per-hour 3600 --print-every 10"

# run in the VM with its python3: is what `current` points at complete, and is every saved frame a whole JPEG?
CHECK = r"""
import hashlib, json, os, sys
root = os.path.expanduser(sys.argv[1])
out = {"problems": []}
def bad(why): out["problems"].append(why)
try:
    rid = os.path.basename(os.readlink(os.path.join(root, "current")))
except OSError:
    rid = None
out["current"] = rid
if rid:
    rel = os.path.join(root, "releases", rid)
    try:
        info = json.load(open(os.path.join(rel, "release.json")))
        out["bundle"] = info["bundle"]
    except (OSError, ValueError, KeyError) as e:
        bad(f"release.json of {rid}: {e}"); info = {}
    if not os.path.isfile(os.path.join(rel, "run")) or os.path.getsize(os.path.join(rel, "run")) == 0:
        bad(f"releases/{rid}/run is missing or empty")
    if info:
        b = os.path.join(root, "bundles", info["bundle"])
        try:
            man = json.load(open(os.path.join(b, "edgelite.json")))
            for m in man["models"]:
                if m.get("status", "ok") == "ok" and m.get("path"):
                    h = hashlib.sha256(open(os.path.join(b, m["path"]), "rb").read()).hexdigest()
                    if h != m["sha256"]:
                        bad(f"bundle {info['bundle']}: {m['path']} fails its sha256")
        except (OSError, ValueError, KeyError) as e:
            bad(f"bundle {info.get('bundle')}: {e}")
        if not os.path.exists(os.path.join(root, "venvs", info.get("venv", "?"), ".ready")):
            bad(f"venv {info.get('venv')} is not marked ready")
frames = os.path.join(root, "frames")
n = 0
for name in (os.listdir(frames) if os.path.isdir(frames) else []):
    if name.startswith(".") or not name.endswith(".jpg"):
        continue
    n += 1
    data = open(os.path.join(frames, name), "rb").read()
    if not (data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"):
        bad(f"frames/{name}: a torn JPEG ({len(data)} bytes)")
out["frames"] = n
print(json.dumps(out))
"""


def deploy_cmd(vm, bundle, wheel) -> list[str]:
    return [sys.executable, "-m", "edgelite", "deploy", str(bundle), "--offline", "--source", "/dev/video0",
            "--wheel", str(wheel), "--no-smoke-test", "--health-timeout", str(HEALTH_TIMEOUT), "--save-uncertain",
            "--run-args", RUN_ARGS, *vm.conn()]


def full_deploy(vm, bundle, wheel) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    r = subprocess.run(deploy_cmd(vm, bundle, wheel), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=1500, cwd=ROOT, env=env())
    return r, time.monotonic() - t0


def timed_deploy(vm, bundle, wheel) -> tuple[int, list[tuple[float, str]]]:
    """The deploy, each line of its output with the time (s from the start) it came."""
    t0 = time.monotonic()
    p = subprocess.Popen(deploy_cmd(vm, bundle, wheel), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         cwd=ROOT, env=env())
    lines = [(time.monotonic() - t0, line.rstrip("\n")) for line in p.stdout]
    return p.wait(timeout=1500), lines


def first_at(lines: list[tuple[float, str]], pattern: str) -> float:
    return next(t for t, line in lines if re.search(pattern, line))


def cut_deploy_at(vm, bundle, wheel, at: float, after: str | None = None) -> str:
    """Start the deploy, cut the power `at` s into it (or `at` s after it printed a line matching `after`); the
    last step it had printed."""
    p = subprocess.Popen(deploy_cmd(vm, bundle, wheel), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         cwd=ROOT, env=env())
    seen = []
    if after:
        for line in p.stdout:
            seen.append(line)
            if re.search(after, line):
                break
        else:
            raise AssertionError(f"the deploy ended before printing {after!r}: {''.join(seen)[-2000:]}")
    time.sleep(at)
    vm.cut()
    p.kill()
    out = "".join(seen) + p.communicate()[0]
    steps = re.findall(r"^\[\d/\d\] [a-z ]+", out, re.M)
    return steps[-1] if steps else "(connecting)"


def recover(vm, names: dict) -> dict:
    """Power on, wait for /healthz (frames > 0) and check the device folder; the trial's row. `names`: bundle
    id -> "old" / "new"."""
    t0 = time.monotonic()
    row = {"ssh_s": round(vm.boot(), 1), "problems": []}
    release, body = None, {}
    # the health timeout counts from SSH (the system up): on a shared 2-core host the emulated boot alone
    # varies from 20 s to minutes; the table has both figures from power-on
    up = time.monotonic()
    while time.monotonic() - up < HEALTH_TIMEOUT:
        code, body = vm.healthz()
        if code == 200 and int(body.get("frames") or 0) > 0:
            release = body.get("release")
            break
        time.sleep(2)
    row["healthy_s"] = round(time.monotonic() - t0, 1) if release else None
    if not release:
        row["problems"].append(f"not healthy {HEALTH_TIMEOUT} s after SSH was up (last /healthz: {body})")
    r = vm.ssh(f"python3 -c {shlex.quote(CHECK)} {DIR}", check=False)
    try:
        check = json.loads(r.stdout)
    except ValueError:
        check = {"problems": [f"the check did not run: {r.stderr[-300:]}"]}
    row["problems"] += check["problems"]
    row["frames"] = check.get("frames")
    row["serving"] = names.get(check.get("bundle"), f"bundle {check.get('bundle')}?")
    if check.get("bundle") not in names:
        row["problems"].append(f"serving bundle {check.get('bundle')}: neither the old nor the new one")
    if release and release != check.get("current"):
        row["problems"].append(f"/healthz says {release} serves, `current` is {check.get('current')}")
    st = vm.deploy("--status", "--json", timeout=300)
    if st.returncode != 0:
        row["problems"].append(f"deploy --status failed: {st.stdout.strip()[-300:]}")
    return row


def test_power_cut_at_random_moments_leaves_a_serving_device(vm, deployed, tiny_bundle, broken_bundle, wheel, tmp_path):
    from edgelite.bundle import Bundle
    from edgelite.deploy.artifacts import checked_bundle

    other = tmp_path / "tiny-v2"
    shutil.copytree(tiny_bundle, other)
    b = Bundle.load(other)
    b.info["version"] = 2
    b.save()
    bundles = {"a": tiny_bundle, "b": other, "broken": broken_bundle}
    ids = {k: checked_bundle(v).id for k, v in bundles.items()}
    # switch to b with --save-uncertain: the deploy every trial repeats (bundle a <-> b), timed
    r, full_s = full_deploy(vm, bundles["b"], wheel)
    assert r.returncode == 0, r.stdout[-3000:]
    TIMINGS["power cut: a full deploy (switching bundles)"] = full_s
    # the broken release's deploy, timed from its switch to the end of the rollback
    code, lines = timed_deploy(vm, bundles["broken"], wheel)
    out = "\n".join(line for _, line in lines)
    assert code == 6 and "healthy again" in out, out[-3000:]
    restart_s, rolled_s = first_at(lines, RESTART), lines[-1][0]
    TIMINGS["power cut: a broken release's deploy, restart -> rolled back"] = rolled_s - restart_s
    rng = random.Random(SEED)
    n_deploy = (CUTS + 1) // 2
    n_broken = n_deploy // 3
    spread = n_deploy - n_broken
    rows, on, k, j = [], "b", 0, 0
    for i in range(CUTS):
        if i % 2 == 0 and k % 3 == 2:  # the broken release, cut between its restart and the rollback's end
            k += 1
            at = round(rng.uniform(0.0, rolled_s - restart_s), 1)
            step = cut_deploy_at(vm, bundles["broken"], wheel, at, after=RESTART)
            row = {"n": i + 1, "during": f"deploy {on}->broken, {at} s after its restart", "at_s": at, "step": step,
                   **recover(vm, {ids[on]: "old", ids["broken"]: "the broken one"})}
            if row["serving"] != "old":
                row["problems"].append(f"serving {row['serving']} after the cut")
            again, took = full_deploy(vm, bundles["broken"], wheel)
            row["rerun"] = f"rolled back {took:.0f} s" if again.returncode == 6 else f"exit {again.returncode}"
            if again.returncode != 6 or "healthy again" not in again.stdout:
                row["problems"].append(f"the broken deploy run again did not roll back: {again.stdout.strip()[-600:]}")
        elif i % 2 == 0:  # a cut mid-deploy of the other bundle, in the j-th of `spread` slices; the deploy again
            k += 1
            to = "a" if on == "b" else "b"
            at = round(max(0.5, full_s * (j + rng.random()) / spread), 1)
            j += 1
            step = cut_deploy_at(vm, bundles[to], wheel, at)
            row = {"n": i + 1, "during": f"deploy {on}->{to}", "at_s": at, "step": step,
                   **recover(vm, {ids[on]: "old", ids[to]: "new"})}
            again, took = full_deploy(vm, bundles[to], wheel)
            row["rerun"] = f"ok {took:.0f} s" if again.returncode == 0 else f"exit {again.returncode}"
            if again.returncode != 0:
                row["problems"].append(f"the deploy run again failed: {again.stdout.strip()[-600:]}")
            else:
                on = to
        else:  # steady running, frames being saved
            at = round(rng.uniform(1.0, 30.0), 1)
            time.sleep(at)
            vm.cut()
            row = {"n": i + 1, "during": f"running {on} (--save-uncertain)", "at_s": at, "step": "-",
                   **recover(vm, {ids[on]: "same"})}
            row["rerun"] = "-"
        rows.append(row)
        print(json.dumps(row), flush=True)
        if os.environ.get("EDGELITE_FAULTS_TABLE"):  # after every cut: a run stopped early keeps its rows
            with open(os.environ["EDGELITE_FAULTS_TABLE"], "w") as f:
                f.write(render(rows))
    table = render(rows)
    if os.environ.get("EDGELITE_FAULTS_TABLE"):
        with open(os.environ["EDGELITE_FAULTS_TABLE"], "w") as f:
            f.write(table)
    healthy = [r["healthy_s"] for r in rows if r["healthy_s"]]
    if healthy:
        TIMINGS["power cut: power-on -> healthy (worst)"] = max(healthy)
    assert all(not r["problems"] for r in rows), table


def render(rows: list[dict]) -> str:
    head = (f"Power cuts on the emulated Pi ({PI_OS}), seed {SEED}: qemu killed -9 at the moment shown (s into "
            f"the deploy, or into steady running), the same disk booted again.\n\n| # | during | cut at (s) | last step printed | serving after | SSH (s) | "
            f"healthy (s from power-on) | frames kept | rerun of the deploy | problems |\n|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['n']} | {r['during']} | {r['at_s']} | {r['step']} | {r['serving']} | {r['ssh_s']} | "
        f"{r['healthy_s'] if r['healthy_s'] is not None else 'NOT HEALTHY'} | {r['frames']} | {r['rerun']} | "
        f"{'; '.join(r['problems']) or 'none'} |\n" for r in rows)


def test_a_cut_while_a_broken_release_is_on_trial_boots_the_release_before(vm, deployed, broken_bundle, wheel):
    """The switch's trial (run/trial): a release that cannot run, the power cut the moment the service restarts
    on it (before the health check could roll it back). Without the trial the device boots into it and
    restarts it until systemd gives up; with it, the release's run script sees a trial from another boot and
    puts `current` back: the old release serves, the broken one is marked failed, deploys.log says why."""
    from edgelite.deploy.artifacts import checked_bundle

    code, _ = vm.healthz()
    assert code == 200
    before = vm.ssh(f"readlink {DIR}/current").stdout.strip().rsplit("/", 1)[-1]
    old_bundle = json.loads(vm.ssh(f"cat {DIR}/releases/{before}/release.json").stdout)["bundle"]
    step = cut_deploy_at(vm, broken_bundle, wheel, 0.0, after=RESTART)
    row = recover(vm, {checked_bundle(broken_bundle).id: "the broken one", old_bundle: "old"})
    assert not row["problems"] and row["serving"] == "old", (step, row)
    assert vm.ssh(f"readlink {DIR}/current").stdout.strip().endswith(before)
    log = vm.ssh(f"tail -n 3 {DIR}/log/deploys.log").stdout
    assert "interrupted " in log and "the device went down before it proved healthy" in log, log
    rid = re.search(r"interrupted (\S+):", log).group(1)
    assert vm.ssh(f"test -d {DIR}/releases/{rid}.failed && test ! -e {DIR}/run/trial", check=False).returncode == 0
    TIMINGS["power cut on trial: power-on -> the release before healthy"] = row["healthy_s"]
