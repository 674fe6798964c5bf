"""The camera loop's figures (issue: `edgelite run`), measured here and written to benchmarks/results/.

    python benchmarks/run_loop.py [--model lite0_int8.tflite]

- loop FPS on a file source vs a bare invoke() loop (same model, same threads)   goal >= 0.90
- preprocess + postprocess per frame at 224x224 from 640x480 frames                goal <= 1 ms
- start -> first result vs `python -c "import numpy, cv2"`                         goal <= 3x
- peak RSS with EfficientNet-Lite0 int8                                            goal <= 150 MB
- RSS growth over a 30 000-frame run                                               goal <= 5 %

The measurements live in tests/device/test_run_figures.py (so `make test` exercises them too); this
script runs them on their own, on an otherwise idle machine, and renders the result table. The
default model has EfficientNet-Lite0's exact layout at 224x224 (speed and memory do not depend on
the weight values); --model measures a real file instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="an EfficientNet-Lite0 int8 .tflite (default: the layout-equal test model)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = ap.parse_args()
    env = dict(os.environ)
    if args.model:
        env["EDGELITE_LITE0_TFLITE"] = str(Path(args.model).resolve())
    src = ROOT / "test-artifacts/device/figures.json"
    src.unlink(missing_ok=True)  # the tests add to this file: never publish a figure from an earlier run
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/device/test_run_figures.py"], cwd=ROOT, env=env)
    if r.returncode != 0 or not src.exists():
        print("run_loop: the measurements failed; nothing written to benchmarks/results", file=sys.stderr)
        return r.returncode or 1
    data = json.loads(src.read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_loop.json").write_text(json.dumps(data, indent=2) + "\n")
    fps, sm = data.get("fps", {}), data.get("startup_memory", {})
    growth = data.get("rss_30000_frames", {})
    rows = [
        ("loop FPS / bare invoke() FPS (file source)", fps.get("loop_over_bare"), ">= 0.90",
         f"{fps.get('loop_fps_file_source')} vs {fps.get('bare_invoke_fps')} fps, {fps.get('threads')} thread(s)"),
        ("preprocess + postprocess ms at 224x224", fps.get("preprocess_plus_postprocess_ms_224"), "<= 1 ms",
         f"stages {fps.get('stage_ms')}"),
        ("start -> first result / import numpy, cv2", sm.get("first_over_import"), "<= 3",
         f"{sm.get('start_to_first_result_s')} s vs {sm.get('import_numpy_cv2_s')} s"),
        ("peak RSS MB, EfficientNet-Lite0 int8", sm.get("peak_rss_mb_lite0_int8"), "<= 150", ""),
        ("RSS growth over 30 000 frames", growth.get("rss_growth"), "<= 0.05",
         f"{growth.get('rss_1000_kb')} kB after 1 000 frames, {growth.get('rss_30000_kb')} kB after 30 000"),
    ]
    lines = ["# edgelite run: loop figures", "", f"Model: `{fps.get('model')}`. "
             "Command: `python benchmarks/run_loop.py`" + (f" --model {args.model}" if args.model else "") + ".", "",
             "| figure | value | goal | detail |", "|---|---:|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    (out / "run_loop.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return r.returncode


if __name__ == "__main__":
    raise SystemExit(main())
