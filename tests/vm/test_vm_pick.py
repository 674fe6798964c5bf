"""`--format auto` on the emulated Pi (issue #24): the deploy's smoke step measures the pick on the device's
CPU, the systemd service starts from the cached decision (no second trial), and /healthz, `deploy --status`
and `bench --pick --host` say what runs and why. The trial's cost on this CPU is reported with the VM figures.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from .vmkit import DIR, PI_CPU, ROOT, TIMINGS, env

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]


def test_the_smoke_step_measures_the_pick_and_the_service_starts_from_it(vm, deployed, tiny_bundle):
    line = [ln for ln in deployed.splitlines() if "format auto:" in ln]
    assert len(line) == 1 and "int8 x" in line[0] and "fastest of" in line[0], deployed[-3000:]
    code, body = vm.healthz()
    pick = body.get("pick") or {}
    assert code == 200 and pick.get("how") == "cached" and pick["model"] == body["model"] == "int8", body
    # the session's bundle's decision (other tests deploy other bundles, each with its own)
    manifest = hashlib.sha256((tiny_bundle / "edgelite.json").read_bytes()).hexdigest()
    cached = json.loads(vm.ssh(f"cat \"$(ls -t $(grep -l {manifest} {DIR}/cache/*.json) | head -1)\"").stdout)
    assert cached["rows"] and {r["name"] for r in cached["rows"]} == {"int8"}
    assert cached["device"]["machine"] == "aarch64" and pick["trial_s"] == cached["trial_s"]
    TIMINGS[f"format auto trial on {PI_CPU} (smoke step, {len(cached['rows'])} candidates)"] = cached["trial_s"]
    status = vm.deploy("--status", timeout=300)
    assert status.returncode == 0 and "  pick      int8 x" in status.stdout and ", cached: fastest of" in status.stdout


def test_bench_pick_on_the_device(vm, deployed, tiny_bundle):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edgelite", "bench", str(tiny_bundle), "--pick", *vm.conn()],
                       capture_output=True, text=True, cwd=ROOT, env=env(), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "via ssh" in r.stdout and "aarch64" in r.stdout
    (decision,) = [ln for ln in r.stdout.splitlines() if ln.startswith("pick: ")]
    assert decision.startswith("pick: int8 x") and "(trial " in decision
    TIMINGS[f"bench --pick --host trial on {PI_CPU} (s)"] = float(decision.rsplit("(trial ", 1)[1].split(" s")[0])
