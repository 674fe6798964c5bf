"""int8 with the default settings (`--auto-qat 0.5`): the demo's schedule trained with several seeds, each
converted with `edgelite convert RUN --formats int8` as a user would; what the device runs, its Δ top-1
against float on the 1,000 held-out images, and what the automatic QAT costs (time, size, latency).

    python benchmarks/int8_auto_qat.py --data data/fashion-mnist --seeds 0,1,2,3

Each seed: `edgelite train DATA --backbone efficientnet_lite0 --image-size 96 --epochs 3 --fine-tune-epochs 2
--seed S` (the demo's command), then convert with and without `--no-auto-qat`, both timed wall to wall.
Latency: p50 of 300 invoke() calls per file, 1 thread, the same process. Writes
benchmarks/results/int8_auto_qat.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EDGELITE = [sys.executable, "-m", "edgelite"]


def _timed(argv: list[str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    if p.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(argv)} failed:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t


def p50_ms(path: Path, runs: int = 300) -> float:
    from edgelite.device.runtime import load_model

    m = load_model(path, num_threads=1)
    x = np.zeros((m.input_height, m.input_width, 3), np.uint8)
    for _ in range(30):
        m.classify(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        m.classify(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/fashion-mnist")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--name", default="int8_auto_qat")
    args = ap.parse_args(argv)

    from edgelite.bundle import Bundle
    from edgelite.stats import format_delta

    rows = []
    with tempfile.TemporaryDirectory(prefix="auto-qat-") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            run = Path(tmp) / f"run{seed}"
            train_s = _timed([*EDGELITE, "train", args.data, "--out", str(run), "--backbone", "efficientnet_lite0",
                              "--image-size", "96", "--epochs", "3", "--fine-tune-epochs", "2", "--seed", str(seed),
                              "--overwrite"])
            ptq_s = _timed([*EDGELITE, "convert", str(run), "--out", str(Path(tmp) / "ptq"), "--formats", "int8",
                            "--no-auto-qat", "-q"])
            auto_s = _timed([*EDGELITE, "convert", str(run), "--out", str(Path(tmp) / "auto"), "--formats", "int8",
                             "-q"])
            b = Bundle.load(Path(tmp) / "auto")
            int8 = b.entry("int8")
            runs = b.select()
            qat = next((m for m in b.models if m.name == "qat_int8"), None)
            row = {"seed": seed, "train_s": round(train_s, 1), "convert_ptq_s": round(ptq_s, 1),
                   "convert_default_s": round(auto_s, 1), "float_top1": b.info["reference"]["top1"],
                   "int8_top1": int8.metrics["top1"], "int8_delta": int8.metrics["delta"],
                   "int8_ci": int8.metrics["delta_ci"], "qat_ran": qat is not None,
                   "qat_top1": qat.metrics["top1"] if qat and qat.metrics else None,
                   "qat_delta": qat.metrics["delta"] if qat and qat.metrics else None,
                   "qat_ci": qat.metrics["delta_ci"] if qat and qat.metrics else None,
                   "device_runs": runs.name, "device_delta": runs.metrics["delta"],
                   "device_ci": runs.metrics["delta_ci"], "int8_bytes": int8.bytes,
                   "qat_bytes": qat.bytes if qat and qat.path else None,
                   "int8_p50_ms": round(p50_ms(b.root / int8.path), 3),
                   "qat_p50_ms": round(p50_ms(b.root / qat.path), 3) if qat and qat.path else None,
                   "load": round(os.getloadavg()[0], 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    cmd = "python benchmarks/int8_auto_qat.py " + " ".join(argv if argv is not None else sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"command": cmd, "rows": rows}, indent=1) + "\n")
    md = ["# int8 with the default `--auto-qat 0.5`, by training seed (1,000 held-out images)", "", f"`{cmd}`", "",
          "| seed | float | int8 (post-training) Δ [95 %] | QAT ran | qat_int8 Δ [95 %] | device runs | its Δ | "
          "convert s (no QAT → default) | size MB int8 / qat | p50 ms int8 / qat |",
          "|---:|---:|---|---|---|---|---:|---|---|---|"]
    for r in rows:
        qat = format_delta(r["qat_delta"], r["qat_ci"]) if r["qat_delta"] is not None else "-"
        size = f"{r['int8_bytes'] / 1e6:.2f}" + (f" / {r['qat_bytes'] / 1e6:.2f}" if r["qat_bytes"] else "")
        lat = f"{r['int8_p50_ms']:.2f}" + (f" / {r['qat_p50_ms']:.2f}" if r["qat_p50_ms"] else "")
        md.append(f"| {r['seed']} | {r['float_top1']:.3f} | {format_delta(r['int8_delta'], r['int8_ci'])} | "
                  f"{'yes' if r['qat_ran'] else 'no'} | {qat} | {r['device_runs']} | {r['device_delta']:+.1f} | "
                  f"{r['convert_ptq_s']:.0f} → {r['convert_default_s']:.0f} | {size} | {lat} |")
    worst = min(r["device_delta"] for r in rows)
    md += ["", f"Worst Δ of the model the device runs: {worst:+.1f} points (goal: no worse than −0.5). "
           "QAT runs only when post-training int8 loses more than 0.5 points; it is kept only when it scores "
           "above int8. Load average at each row is in the JSON."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
