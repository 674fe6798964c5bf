"""Where `edgelite run --threads 2` spends CPU per frame on a file: each thread's CPU time (from
/proc/PID/task/*/stat, sampled until the process ends) divided by the frames.

    python benchmarks/loop_cpu.py [--frames 20000] [--size 96]

Uses run_loop.py's cached model and clip (`python benchmarks/run_loop.py --small` makes them). Threads are
not named at the OS level, so they are listed by CPU time: with --threads 2 on a file the two busiest are
the model copies, then the capture thread (decode + resize), then the reporting and main threads.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cache = Path.home() / ".cache/edgelite" / ("run_loop_small" if args.size == 96 else f"run_loop_small_{args.size}")
    if not (cache / "bundle").exists():
        print(f"no {cache}/bundle: run `python benchmarks/run_loop.py --small --size {args.size}` once", file=sys.stderr)
        return 2
    p = subprocess.Popen([sys.executable, "-m", "edgelite", "run", str(cache / "bundle"), "--source",
                          str(cache / "clip.mp4"), "--json", "-", "--threads", str(args.threads), "--loop",
                          "--max-frames", str(args.frames), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    tick, last, sys_, t0 = os.sysconf("SC_CLK_TCK"), {}, {}, time.perf_counter()
    while p.poll() is None:
        for f in glob.glob(f"/proc/{p.pid}/task/*/stat"):
            try:
                text = Path(f).read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            tid = f.split("/")[4]
            last[tid], sys_[tid] = (int(fields[11]) + int(fields[12])) / tick, int(fields[12]) / tick
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    total = sum(last.values())
    print(f"{args.frames} frames, {args.size} px, --threads {args.threads}: {wall:.1f} s wall, "
          f"{total / args.frames * 1e6:.0f} us of CPU per frame")
    for tid, s in sorted(last.items(), key=lambda kv: -kv[1]):
        if s >= 0.05:
            print(f"  thread {tid}: {s / args.frames * 1e6:6.1f} us per frame ({sys_[tid] / args.frames * 1e6:.1f} in the kernel)")
    return p.returncode


if __name__ == "__main__":
    raise SystemExit(main())
