"""A card remounted read-only under a running `edgelite run --http --save-uncertain`, and writable again: how
long until /healthz says "degraded", how many frames are classified meanwhile, how long until frames are saved
again. Root only (it mounts a 1 MB tmpfs).

    python benchmarks/faults_readonly.py BUNDLE VIDEO [--reps 3]      # figures in benchmarks/results/faults.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.device import devicekit  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("video", type=Path)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    card = Path(tempfile.mkdtemp()) / "card"
    card.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(card)], check=True)
    keep, port = card / "unsure", devicekit.free_port()
    proc = devicekit.start_cmd(a.bundle, "--source", a.video, "--loop", "--realtime", "--http", f"127.0.0.1:{port}",
                               "--print-every", "0", "--save-uncertain", keep, "--below", "1.0",
                               "--max-per-hour", "3600", "--min-free", "0")

    def health() -> tuple[int | None, dict]:
        try:
            r = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
        except OSError:
            return None, {}

    def until(pred, timeout: float = 120.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            code, body = health()
            if pred(code, body):
                return time.monotonic() - t0, code, body
            time.sleep(0.1)
        raise SystemExit("timed out")

    res: dict = {"ro_to_degraded_s": [], "frames_in_5s_read_only": [], "rw_to_saving_again_s": []}
    try:
        until(lambda c, b: c == 200 and any(keep.glob("*.jpg")))
        for _ in range(a.reps):
            subprocess.run(["mount", "-o", "remount,ro", str(card)], check=True)
            dt, _, body = until(lambda c, b: b.get("status") == "degraded")
            res["ro_to_degraded_s"].append(round(dt, 2))
            before = body["frames"]
            time.sleep(5)
            code, body = health()
            res["frames_in_5s_read_only"].append(body["frames"] - before if code == 200 else None)
            n = len(list(keep.glob("*.jpg")))
            subprocess.run(["mount", "-o", "remount,rw", str(card)], check=True)
            dt, _, _ = until(lambda c, b, n=n: b.get("status") == "ok" and len(list(keep.glob("*.jpg"))) > n)
            res["rw_to_saving_again_s"].append(round(dt, 2))
        res["same_process"] = proc.poll() is None
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        subprocess.run(["umount", "-l", str(card)], check=False)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
