"""Wall time of `edgelite fleet deploy` on five real devices (users + sshds on 127.0.0.1), forks 5 vs 1, and
the fleet's overhead over one `edgelite deploy` to one device, with where a one-device rollout's time goes
(seconds per Ansible task: benchmarks/ansible_profile/) and the SSH sessions (round trips) each opens.

    sudo .venv/bin/python benchmarks/fleet_rollout.py        # ~10 min on 2 cores; needs root, sshd, ansible-core

Every rollout after the first is a new bundle (another manifest, same model) with the venv already on
the devices - the everyday case: push the bundle, smoke test, switch, health check. Rollouts alternate
between forks settings so a change of machine load hits both. Results: benchmarks/results/fleet_rollout.{json,md};
a `fleet_rollout_before.json` there (the same script run on an older checkout) becomes the md's "before" column.
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
PROFILE_PLUGINS = Path(__file__).resolve().parent / "ansible_profile"
# the figures issue #24 quoted (commit 66e458a, load average ~7): the "before" of the overhead goal
FIRST = "`edgelite deploy` 4.7 s, `fleet deploy --limit` 21.6 s: overhead 17.0 s (commit 66e458a, load average ~7)"
# what the profile showed, and what the role does since (issue #24 item 4)
CHANGES = """## What the time went to, and what changed

Before, a one-device rollout was ~40 Ansible tasks (two plays), 16 of which reached the device, each with
one SSH session (a round trip plus a Python start there) or several (a `file` loop: one per folder; a
folder `copy`: a stat, a transfer and a module per file): 51 SSH sessions against `edgelite deploy`'s 20.
Ansible's own start-up and the two plays were small; facts were never gathered and pipelining was on already.
Since: the layout comes with the CLI's extra vars (no controller task); the facts call checks the device's
agent by its sha256 first, so the agent is pushed only when it differs (and that push makes the device
folder: no `file` task); the rollout play sends ONE agent `batch` before the push (the plan's folders, what
runs there, the trust list, is the bundle there) and ONE detached `batch` after it (accept the bundle,
install, smoke test, release, switch, health check, rollback: one device-side transaction, followed by one
`wait`); the bundle travels as one tar (`unarchive`) instead of a `copy` per file.
"""


def timed(cmd: list[str], log: Path, env: dict | None = None) -> float:
    t0 = time.monotonic()
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env or ENV)
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
    bundles = {"a": work / "a", **versions(work, ["b", "c", "d", "e", "f", "g", "h", "i", "j"])}
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
        sessions: dict[str, list[int]] = {"deploy": [], "fleet": []}
        for name, how in (("f", "deploy"), ("g", "fleet"), ("h", "fleet"), ("i", "deploy")):
            cmd = ([*deploy_cmd, str(bundles[name])] if how == "deploy" else
                   [*fleet_cmd, str(bundles[name]), *common, "--limit", d.name])
            n0 = d.sessions()
            one[how].append(timed(cmd, log))
            sessions[how].append(d.sessions() - n0)
        profile = work / "profile.json"  # one more fleet rollout to that device: seconds per task
        penv = {**ENV, "ANSIBLE_CALLBACKS_ENABLED": "edgelite_profile", "ANSIBLE_CALLBACK_PLUGINS": str(PROFILE_PLUGINS),
                "EDGELITE_PROFILE": str(profile)}
        profiled = timed([*fleet_cmd, str(bundles["j"]), *common, "--limit", d.name], log, env=penv)
        tasks = json.loads(profile.read_text())
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
        "one_device_ssh_sessions": sessions,
        "profiled_fleet_rollout_s": profiled, "profile": tasks,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fleet_rollout.json").write_text(json.dumps(result, indent=1) + "\n")
    before_file = OUT / "fleet_rollout_before.json"
    before = json.loads(before_file.read_text()) if before_file.exists() else None
    (OUT / "fleet_rollout.md").write_text(markdown(result, before))
    print(markdown(result, before))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def markdown(r: dict, before: dict | None = None) -> str:
    """The results as a table; with `before` (the same script on an older checkout), before and after."""
    b = before or {}

    def row(what: str, key, unit: str = "") -> str:
        def get(d: dict):
            v = d
            for k in key:
                v = v.get(k) if isinstance(v, dict) else None
            return "-" if v is None else f"{v}{unit}"
        return f"| {what} | {get(b)} | {get(r)} |" if before else f"| {what} | {get(r)} |"

    head = "| what | before | after |\n|---|---:|---:|" if before else "| what | wall time (s) |\n|---|---:|"
    rows = [
        row("first rollout, 5 devices, --forks 5 (5 venvs built, offline wheels pushed) (s)",
            ["first_rollout_5_devices_forks_5_s"]),
        row("new bundle to 5 devices, --forks 5 (median of 2) (s)", ["rollout_5_devices_median_s", "forks_5"]),
        row("new bundle to 5 devices, --forks 1 (median of 2) (s)", ["rollout_5_devices_median_s", "forks_1"]),
        row("speed-up of --forks 5 over --forks 1", ["speedup_forks_5_over_1"], "x"),
        row("new bundle to 1 device, `edgelite deploy` (median of 2) (s)", ["one_device_median_s", "deploy"]),
        row("new bundle to 1 device, `edgelite fleet deploy --limit` (median of 2) (s)", ["one_device_median_s", "fleet"]),
        row("**fleet's overhead over one `edgelite deploy`** (s)", ["fleet_overhead_over_deploy_s"]),
        row("SSH sessions on the device, `edgelite deploy` (each run)", ["one_device_ssh_sessions", "deploy"]),
        row("SSH sessions on the device, `fleet deploy --limit` (each run)", ["one_device_ssh_sessions", "fleet"]),
        row("load average before the runs", ["load_average_before"]),
        row("load average after the runs", ["load_average_after"]),
    ]
    out = [f"""# `edgelite fleet deploy`: 5 devices, forks 5 vs 1; overhead over `edgelite deploy`

{r['machine']}, Python {r['python']}, ansible-core {r['ansible_core']}; each device is a user + sshd on
127.0.0.1 (no systemd: the agent's supervisor). `python benchmarks/fleet_rollout.py` (as root); "before" is
the same script run on {b.get('checkout', 'an older checkout')} just before (the machine is shared: its load
average is in the table). The issue's figures: {FIRST}.

{head}
""" + "\n".join(rows) + "\n"]
    out.append(CHANGES)
    for label, d in (("before", b), ("after", r)):
        if d.get("profile"):
            out.append(profile_table(f"Where a one-device `fleet deploy --limit` spends its time ({label}; "
                                     f"{d['profiled_fleet_rollout_s']} s wall)", d["profile"]))
    return "\n".join(out)


def profile_table(title: str, prof: dict, floor: float = 0.1) -> str:
    """Seconds per task (edgelite_profile); tasks under `floor` s are summed in one row."""
    lines = [f"## {title}", "", "| step | s |", "|---|---:|"]
    small = [x for x in prof["rows"] if x["kind"] != "play" and x["seconds"] < floor]
    for x in prof["rows"]:
        if x["kind"] == "play":
            lines.append(f"| *play: {x['name']}* | |")
        elif x["seconds"] >= floor:
            lines.append(f"| {x['name']} | {x['seconds']:.2f} |")
    lines.append(f"| {len(small)} tasks under {floor} s each (set_fact, assert, skipped, includes) | "
                 f"{sum(x['seconds'] for x in small):.2f} |")
    lines.append(f"| **ansible-playbook, start to end** | **{prof['total_s']:.2f}** |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
