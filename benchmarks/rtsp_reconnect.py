"""How long `edgelite run --source rtsp://...` takes to get frames again after the RTSP server comes back.

    python benchmarks/rtsp_reconnect.py --bundle bundles/demo [--outages 2,5,10] [--reps 2]

GStreamer's RTSP server (tests/device/rtsp_server.py, system python3 + python3-gi) plays the bundle's
held-out images on 127.0.0.1; the loop runs with --stall-timeout 2 --backoff 0.5; the server is killed
for each outage length and started again. Reconnect time = first result after the restart minus the
moment the restarted server listens; it is the backoff delay in force when it returned plus one RTSP
handshake. -> benchmarks/results/rtsp_reconnect.{md,json}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(ROOT / "bundles/demo"))
    ap.add_argument("--format", default="int8")
    ap.add_argument("--outages", default="2,5,10")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = ap.parse_args()
    from edgelite.bundle import Bundle
    from tests.device import rtspkit

    why = rtspkit.unavailable()
    if why:
        print(f"rtsp_reconnect: {why}", file=sys.stderr)
        return 1
    b = Bundle.load(args.bundle)
    x, _ = b.heldout()
    frames = rtspkit.write_frames(Path(tempfile.mkdtemp(prefix="rtsp-frames-")), x[:60], scale=2)
    size = 2 * x.shape[1] // 8 * 8
    rows = []
    for outage in [float(v) for v in args.outages.split(",")]:
        for rep in range(args.reps):
            rows.append({"outage_s": outage, "rep": rep + 1, **measure(args, frames, size, outage)})
            print(rows[-1], flush=True)
    res = Path(args.out)
    res.mkdir(parents=True, exist_ok=True)
    (res / "rtsp_reconnect.json").write_text(json.dumps({"bundle": args.bundle, "rows": rows}, indent=2) + "\n")
    lines = ["# RTSP: time to frames after the server returns", "",
             f"`python benchmarks/rtsp_reconnect.py --bundle {args.bundle} --outages {args.outages} --reps {args.reps}` "
             "— gst-rtsp-server on 127.0.0.1 (MJPEG/RTP), OpenCV's FFmpeg backend over TCP, `--stall-timeout 2 "
             "--backoff 0.5` (doubling per failed reopen).", "",
             "| server down for (s) | reconnect after it returns (s), per rep | median | reopen attempts |",
             "|---:|---|---:|---|"]
    for outage in sorted({r["outage_s"] for r in rows}):
        rs = [r for r in rows if r["outage_s"] == outage]
        lines.append(f"| {outage:g} | {', '.join(str(r['reconnect_s']) for r in rs)} | "
                     f"{statistics.median(r['reconnect_s'] for r in rs):.2f} | {', '.join(str(r['reconnects']) for r in rs)} |")
    (res / "rtsp_reconnect.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def measure(args, frames: Path, size: int, outage: float) -> dict:
    """One outage: kill the server, wait `outage` s, start it again, time the first result after that."""
    from edgelite.device import run
    from tests.device import devicekit, rtspkit

    srv = rtspkit.RtspServer(frames, devicekit.free_port(), size=size).start()
    stop, stamps, out = threading.Event(), [], {}

    def loop():
        out["s"] = run(args.bundle, source=srv.url(), format=args.format, stall_timeout=2, open_timeout=3,
                       backoff=0.5, max_reconnects=20, print_every=0, stop=stop, handle_signals=False,
                       on_result=lambda r, f: stamps.append(time.monotonic()))

    t = threading.Thread(target=loop)
    t.start()
    try:
        while len(stamps) < 30:
            time.sleep(0.05)
        t_down = time.monotonic()
        srv.stop()
        time.sleep(outage)
        n = len(stamps)
        srv.start()
        while len(stamps) <= n:
            time.sleep(0.01)
    finally:
        stop.set()
        t.join(30)
        srv.stop()
    return {"reconnect_s": round(stamps[n] - srv.ready_at, 2), "reconnects": out["s"].reconnects,
            "down_to_up_s": round(srv.ready_at - t_down, 2)}


if __name__ == "__main__":
    sys.exit(main())
