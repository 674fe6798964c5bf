"""`edgelite fleet deploy` against `edgelite deploy` on the emulated Pi: the same work through the Ansible role
and through the CLI, on one arm64 device under systemd. Writes benchmarks/results/fleet_vm.md.

    .venv/bin/python benchmarks/fleet_vm.py          # ~10 min on 2 cores (one VM boot, four deploys)

One boot of the cached VM image (tests/vm/vmkit.py), then, each with a new bundle version:
1. `fleet deploy` to the fresh device (the agent, the offline wheelhouse, a venv built),
2. `edgelite deploy` (the venv kept),
3. `fleet deploy` (the venv kept),
4. `--uninstall`, then `edgelite deploy` to the fresh device (as 1, through the CLI).
Each fleet run's output is stamped line by line: where Ansible's time goes, task by task.

PI_OS=bookworm for the Pi 4's image (default trixie). Under qemu's emulation every Python start on the device
costs ~10x a real board's, so an Ansible module (a Python start there) weighs far more here than on a Pi.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.deploy.bundlekit import another_version, write_video  # noqa: E402
from tests.vm.vmkit import DIR, HOME, PI_CPU, PI_OS, VM, env, free_port, image_ready  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "fleet_vm.md"


def stamped(cmd: list[str]) -> tuple[int, float, list[tuple[float, str]]]:
    """Run `cmd`, stamping each output line with the seconds since the start: (exit code, seconds, lines)."""
    t0 = time.monotonic()
    # unbuffered: each line leaves Ansible as it is printed (a pipe would hold them in blocks)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                         env={**env(), "PYTHONUNBUFFERED": "1"})
    lines = [(time.monotonic() - t0, line.rstrip("\n")) for line in p.stdout]
    return p.wait(), time.monotonic() - t0, lines


def tasks(lines: list[tuple[float, str]], total: float) -> list[tuple[str, float]]:
    """Ansible's TASK/PLAY banners and the time each task took. The default callback prints a task's banner
    with its first result, not when it starts, so a task took from the banner before its own to its own."""
    heads = [(t, m.group(1)) for t, s in lines if (m := re.match(r"(?:TASK|PLAY) \[(.*?)\]", s))]
    out = [(name, t - (heads[i - 1][0] if i else 0.0)) for i, (t, name) in enumerate(heads)]
    if out:
        out[0] = (f"{out[0][0]} (with the CLI's and Ansible's start-up)", out[0][1])
    return out + [("(after the last task: the summary)", total - heads[-1][0])] if heads else out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args()
    if why := image_ready():
        raise SystemExit(why)
    from edgelite.deploy.package import build_wheel

    wheel = build_wheel()
    vm = VM(free_port(), free_port())
    vm.start()
    rows: list[tuple[str, float]] = []
    timelines: dict[str, list[tuple[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            tiny = t / "tiny"
            subprocess.run([sys.executable, str(ROOT / "tests" / "deploy" / "bundlekit.py"), str(tiny)], check=True,
                           cwd=ROOT, env=env(), capture_output=True, timeout=600)
            clip = write_video(t / "clip.avi")
            inv = t / "hosts.ini"
            inv.write_text("[pis]\n"
                           f"pi ansible_host=127.0.0.1 ansible_port={vm.port} ansible_user=pi "
                           f"ansible_ssh_private_key_file={HOME / 'id_ed25519'} edgelite_dir={DIR} "
                           f"edgelite_source={clip} edgelite_health_timeout=300\n")
            fleet = [sys.executable, "-m", "edgelite", "fleet", "deploy", "-i", str(inv), "--known-hosts",
                     str(vm.known_hosts), "--strict-host-key", "--offline", "--wheel", str(wheel), "--canary", "0"]
            deploy = [sys.executable, "-m", "edgelite", "deploy", *vm.conn(), "--offline", "--wheel", str(wheel),
                      "--source", str(clip), "--health-timeout", "300"]
            steps = [("fleet deploy, fresh device (agent, wheels, venv built)", "fleet", "v1"),
                     ("edgelite deploy, new bundle (venv kept)", "deploy", "v2"),
                     ("fleet deploy, new bundle (venv kept)", "fleet", "v3"),
                     ("edgelite deploy, fresh device (after --uninstall)", "deploy", "v4")]
            for what, how, v in steps:
                if v == "v4":
                    r = vm.deploy("--uninstall", timeout=600)
                    assert r.returncode == 0, r.stdout[-3000:]
                b = another_version(tiny, t / v, v)
                code, took, lines = stamped([*fleet, str(b)] if how == "fleet" else [*deploy, str(b)])
                if code != 0:
                    print("\n".join(s for _, s in lines[-80:]))
                    raise SystemExit(f"{what}: exit {code}")
                print(f"{what}: {took:.1f} s", flush=True)
                rows.append((what, took))
                if how == "fleet":
                    timelines[what] = tasks(lines, took)
    finally:
        vm.stop()
    write(rows, timelines)
    return 0


def write(rows: list[tuple[str, float]], timelines: dict[str, list[tuple[str, float]]]) -> None:
    load = Path("/proc/loadavg").read_text().split()[:3]
    by = dict(rows)
    out = [f"# `edgelite fleet deploy` against `edgelite deploy` on the emulated Pi ({PI_OS}, {PI_CPU})", "",
           f"`python benchmarks/fleet_vm.py`, {time.strftime('%Y-%m-%d %H:%M')}, host load average after the run "
           f"{' '.join(load)}. One VM boot, one device, a new bundle version each time; the source is a clip.", "",
           "| what | seconds |", "|---|---:|"]
    out += [f"| {what} | {s:.1f} |" for what, s in rows]
    fresh = by["fleet deploy, fresh device (agent, wheels, venv built)"] - by["edgelite deploy, fresh device (after --uninstall)"]
    kept = by["fleet deploy, new bundle (venv kept)"] - by["edgelite deploy, new bundle (venv kept)"]
    out += [f"| **fleet's overhead, fresh device** | {fresh:.1f} |", f"| **fleet's overhead, venv kept** | {kept:.1f} |"]
    for what, tl in timelines.items():
        out += ["", f"## {what}: Ansible's tasks, slowest first", "", "| task | seconds |", "|---|---:|"]
        out += [f"| {name} | {s:.1f} |" for name, s in sorted(tl, key=lambda x: -x[1])[:12]]
    OUT.write_text("\n".join(out) + "\n")
    print(OUT.read_text())


if __name__ == "__main__":
    raise SystemExit(main())
