"""Loop FPS with `--mqtt` vs without, same bundle, same source, same process, alternating runs.

    python benchmarks/mqtt_fps.py --bundle bundles/demo [--format int8] [--frames 1500] [--reps 3]

Starts Debian's mosquitto on 127.0.0.1 (a free port), makes a video of the bundle's held-out images,
and runs `edgelite.device.run` on it (file source read as fast as the model goes, --loop) three ways:
no MQTT; --mqtt (label changes only, the default); --mqtt --mqtt-every 1 (a message per frame: the
worst case). Median FPS per mode -> benchmarks/results/mqtt_fps.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(ROOT / "bundles/demo"))
    ap.add_argument("--format", default=None)
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = ap.parse_args()
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(mosquitto).exists():
        print("mqtt_fps: mosquitto is not installed (scripts/system-deps.sh)", file=sys.stderr)
        return 1
    from edgelite.bundle import Bundle
    from edgelite.device import run
    from edgelite.device.video import write_video

    bundle = Bundle.load(args.bundle)
    x, _ = bundle.heldout()
    tmp = Path(tempfile.mkdtemp(prefix="mqtt-fps-"))
    video = write_video(tmp / "heldout.avi", x, scale=2)
    port = free_port()
    (tmp / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n")
    broker = subprocess.Popen([mosquitto, "-c", str(tmp / "m.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    modes = {"no --mqtt": {}, "--mqtt (label changes)": {"mqtt": f"mqtt://127.0.0.1:{port}/edgelite/bench"},
             "--mqtt --mqtt-every 1": {"mqtt": f"mqtt://127.0.0.1:{port}/edgelite/bench", "mqtt_every": 1}}
    fps: dict[str, list[float]] = {m: [] for m in modes}
    model = None
    try:
        for rep in range(args.reps):
            for mode, extra in modes.items():
                s = run(args.bundle, source=str(video), loop=True, max_frames=args.frames, print_every=0,
                        format=args.format, handle_signals=False, **extra)
                fps[mode].append(round(s.fps, 1))
                model = s.model
                print(f"rep {rep + 1}: {mode:24s} {s.fps:8.1f} fps", flush=True)
    finally:
        broker.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(fps["no --mqtt"])
    data = {"bundle": str(args.bundle), "model": model, "frames_per_run": args.frames, "reps": args.reps,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "python": platform.python_version(),
            "fps": fps, "median_fps": {m: statistics.median(v) for m, v in fps.items()},
            "ratio_to_no_mqtt": {m: round(statistics.median(v) / base, 3) for m, v in fps.items()}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mqtt_fps.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = ["# Loop FPS with --mqtt vs without", "",
             f"`python benchmarks/mqtt_fps.py --bundle {args.bundle}{' --format ' + args.format if args.format else ''}` — model `{model}`, {args.frames} frames per run, "
             f"{args.reps} alternating reps, broker: mosquitto on 127.0.0.1; {data['machine']}, Python {data['python']}.",
             "", "| mode | median FPS | / no --mqtt | runs |", "|---|---:|---:|---|"]
    for m, v in fps.items():
        lines.append(f"| {m} | {statistics.median(v):.1f} | {data['ratio_to_no_mqtt'][m]:.3f} | {', '.join(map(str, v))} |")
    (out / "mqtt_fps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
