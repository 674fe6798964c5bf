"""benchmarks/auto_format.py on the emulated Pi: boot the cached VM image (tests/vm/vmkit.py), deploy the tests'
tiny bundle for a venv with this checkout's wheel, copy a bundle and the benchmark in, run it with the
deployed venv's Python, and merge its section into benchmarks/results/auto_format.{json,md}.

    .venv/bin/python benchmarks/auto_format_vm.py bundles/demo --frames 30 --repeats 2 --rounds 3   # ~15 min on 2 cores

PI_OS=bookworm for the Pi 4's CPU model (default trixie: a Pi 5's Cortex-A76). Under qemu's emulation every
figure is far slower than a real board; what carries over is the ranking and whether the pick keeps up.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.auto_format import merge  # noqa: E402
from tests.deploy.bundlekit import write_video  # noqa: E402
from tests.vm.vmkit import DIR, VM, env, free_port, image_ready  # noqa: E402

WORK = "/tmp/auto-format"


def scp(vm: VM, local: Path, remote: str) -> None:
    cmd = ["scp", "-r", "-q", "-P", str(vm.port), "-i", str(vm.key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
           "-o", f"UserKnownHostsFile={vm.known_hosts}", "-o", "StrictHostKeyChecking=yes", str(local),
           f"pi@127.0.0.1:{remote}"]
    subprocess.run(cmd, check=True, timeout=900)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--screen", type=float, default=3.0, help="see auto_format.py --screen (default 3 here)")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    if why := image_ready():
        raise SystemExit(why)
    from edgelite.deploy.package import build_wheel

    wheel = build_wheel()
    vm = VM(free_port(), free_port())
    vm.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tiny = Path(tmp) / "tiny"
            subprocess.run([sys.executable, str(ROOT / "tests" / "deploy" / "bundlekit.py"), str(tiny)], check=True,
                           cwd=ROOT, env=env(), capture_output=True, timeout=600)
            # a video, not vivid's camera: an overloaded host can starve the emulated camera (health would fail)
            r = vm.deploy(str(tiny), "--offline", "--source", str(write_video(Path(tmp) / "clip.avi")),
                          "--wheel", str(wheel), "--health-timeout", "300", "--print-every", "10")
            print(next((ln for ln in r.stdout.splitlines() if "format auto:" in ln), "no pick line"), file=sys.stderr)
        venv = vm.ssh(f"ls {DIR}/venvs").stdout.split()  # the venv is what this needs, healthy service or not
        if r.returncode != 0 and not venv:
            raise SystemExit(r.stdout[-3000:])
        vm.ssh(f"rm -rf {WORK} && mkdir -p {WORK}")
        scp(vm, Path(a.bundle).resolve(), f"{WORK}/bundle")
        scp(vm, ROOT / "benchmarks" / "auto_format.py", f"{WORK}/auto_format.py")
        py = f"{DIR}/venvs/{venv[0]}/bin/python"
        run = vm.ssh(f"{py} {WORK}/auto_format.py {WORK}/bundle --frames {a.frames} --repeats {a.repeats} --rounds {a.rounds} --screen {a.screen} "
                     f"--note {shlex.quote(a.note)} --json {WORK}/vm.json", check=False, timeout=7200)
        print(run.stderr[-3000:], file=sys.stderr)
        if run.returncode != 0:
            raise SystemExit(f"the benchmark failed in the VM (exit {run.returncode})")
        section = json.loads(vm.ssh(f"cat {WORK}/vm.json").stdout)
        for s in section.values():
            s["bundle"] = Path(a.bundle).name
        merge(ROOT / "benchmarks" / "results", section)
    finally:
        vm.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
