"""Wall time of `edgelite fleet deploy` on five real devices (users + sshds on 127.0.0.1), forks 5 vs 1, and
the fleet's overhead over one `edgelite deploy` to one device.

    sudo .venv/bin/python benchmarks/fleet_rollout.py        # ~15 min on 2 cores; needs root, sshd, ansible-core

Every rollout after the first is a new bundle (another manifest, same model) with the venv already on
the devices - the everyday case: push the bundle, smoke test, switch, health check. Rollouts alternate
between forks settings so a change of machine load hits both. Results: benchmarks/results/fleet_rollout.{json,md}.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.deploy.bundlekit import write_video  # noqa: E402
from tests.fleet.fleetkit import Fleet, missing_tools  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "ANSIBLE_NOCOLOR": "1"}


def timed(cmd: list[str], log: Path) -> float:
    t0 = time.monotonic()
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=ENV)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed (exit {r.returncode}); see {log}")
    return round(took, 1)


def versions(base: Path, names: list[str]) -> dict[str, Path]:
    """Copies of bundle `a` with another manifest each (another bundle id, the same model)."""
    from edgelite.bundle import Bundle

    out = {}
    for n, name in enumerate(names, 2):
        shutil.copytree(base / "a", base / name)
        b = Bundle.load(base / name)
        b.info["version"] = n
        b.save()
        out[name] = base / name
    return out


def main() -> int:
    why = missing_tools()
    if why:
        print(f"fleet_rollout: {why}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="edgelite-fleet-bench-"))
    log = work / "runs.log"
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "deploy" / "bundlekit.py"), str(work / "a")],
                       capture_output=True, text=True, cwd=ROOT, env=ENV)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    bundles = {"a": work / "a", **versions(work, ["b", "c", "d", "e", "f", "g", "h", "i"])}
    video = write_video(work / "colours.avi")
    fleet = Fleet(work / "fleet", 5, prefix="elbn")
    load0 = os.getloadavg()
    try:
        inv = fleet.inventory(work / "hosts.ini", video)
        fleet_cmd = [sys.executable, "-m", "edgelite", "fleet", "deploy"]
        common = ["-i", str(inv), "--offline", "--canary", "0", "--serial", "100%"]
        first = timed([*fleet_cmd, str(bundles["a"]), *common, "--forks", "5"], log)  # venvs built here
        runs: dict[int, list[float]] = {5: [], 1: []}
        for name, forks in (("b", 5), ("c", 1), ("d", 1), ("e", 5)):
            runs[forks].append(timed([*fleet_cmd, str(bundles[name]), *common, "--forks", str(forks)], log))
        d = fleet.devices[0]
        deploy_cmd = [sys.executable, "-m", "edgelite", "deploy", "--host", f"{d.user}@127.0.0.1:{d.port}",
                      "--identity", str(fleet.key), "--known-hosts", str(fleet.known_hosts), "--offline",
                      "--source", str(video), "--http", f"127.0.0.1:{d.http}", "--health-timeout", "60",
                      "--print-every", "5"]
        one: dict[str, list[float]] = {"deploy": [], "fleet": []}
        for name, how in (("f", "deploy"), ("g", "fleet"), ("h", "fleet"), ("i", "deploy")):
            cmd = ([*deploy_cmd, str(bundles[name])] if how == "deploy" else
                   [*fleet_cmd, str(bundles[name]), *common, "--limit", d.name])
            one[how].append(timed(cmd, log))
    finally:
        fleet.stop()
    med = {k: round(statistics.median(v), 1) for k, v in runs.items()}
    one_med = {k: round(statistics.median(v), 1) for k, v in one.items()}
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
        "ansible_core": _version("ansible-core"), "load_average_before": [round(x, 2) for x in load0],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "first_rollout_5_devices_forks_5_s": first,
        "rollout_5_devices_s": {"forks_5": runs[5], "forks_1": runs[1]},
        "rollout_5_devices_median_s": {"forks_5": med[5], "forks_1": med[1]},
        "speedup_forks_5_over_1": round(med[1] / med[5], 2),
        "one_device_s": one, "one_device_median_s": one_med,
        "fleet_overhead_over_deploy_s": round(one_med["fleet"] - one_med["deploy"], 1),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fleet_rollout.json").write_text(json.dumps(result, indent=1) + "\n")
    (OUT / "fleet_rollout.md").write_text(markdown(result))
    print(markdown(result))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def markdown(r: dict) -> str:
    m, o = r["rollout_5_devices_median_s"], r["one_device_median_s"]
    return f"""# `edgelite fleet deploy`: 5 devices, forks 5 vs 1; overhead over `edgelite deploy`

{r['machine']}, Python {r['python']}, ansible-core {r['ansible_core']}; each device is a user + sshd on
127.0.0.1 (no systemd: the agent's supervisor). Load average before/after: {r['load_average_before']} /
{r['load_average_after']} (the machine is shared). `python benchmarks/fleet_rollout.py` (as root).

| what | wall time (s) |
|---|---:|
| first rollout, 5 devices, --forks 5 (5 venvs built, offline wheels pushed) | {r['first_rollout_5_devices_forks_5_s']} |
| new bundle to 5 devices, --forks 5 (median of {len(r['rollout_5_devices_s']['forks_5'])}) | {m['forks_5']} |
| new bundle to 5 devices, --forks 1 (median of {len(r['rollout_5_devices_s']['forks_1'])}) | {m['forks_1']} |
| speed-up of --forks 5 over --forks 1 | {r['speedup_forks_5_over_1']}x |
| new bundle to 1 device, `edgelite deploy` (median of {len(r['one_device_s']['deploy'])}) | {o['deploy']} |
| new bundle to 1 device, `edgelite fleet deploy --limit` (median of {len(r['one_device_s']['fleet'])}) | {o['fleet']} |
| fleet's overhead over one `edgelite deploy` | {r['fleet_overhead_over_deploy_s']} |
"""


if __name__ == "__main__":
    sys.exit(main())
