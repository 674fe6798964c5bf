"""Full-int8 PTQ top-1 against the float model on a run's held-out split, with the paired 95 % interval, for
several calibration sets: where does int8's loss come from, and what fixes it?

    python benchmarks/int8_accuracy.py runs/demo --name int8_accuracy

Variants: the default (300 random training images), class-balanced 300, 1,000 random, and per-tensor
weights. Each is exported the way `edgelite convert` exports int8 (uint8 in/out) and scored through the
device's runtime and preprocessing (edgelite.convert.validate). Writes benchmarks/results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def balanced(labels: np.ndarray, n: int, rng) -> np.ndarray:
    """n indices, as equal per class as the classes allow."""
    classes = np.unique(labels)
    per = n // len(classes)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per] for c in classes]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--name", default="int8_accuracy")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from edgelite.convert.source import open_source
    from edgelite.convert.tflite import to_tflite
    from edgelite.convert.validate import keras_scores, run_file
    from edgelite.stats import format_delta, paired_delta

    src = open_source(args.run)
    test_x, test_y, _ = src.images("test")
    train_x, train_y, _ = src.images("train")
    model = src.load_model()
    ref = keras_scores(model, test_x, src.spec)
    ref_ok = ref.argmax(1) == test_y
    rng = np.random.default_rng(args.seed)
    variants = {  # name: (calibration indices into the training split, per_tensor)
        "default: 300 random": (np.random.default_rng(args.seed).permutation(len(train_y))[:300], False),
        "300 class-balanced": (balanced(train_y, 300, rng), False),
        "1000 random": (np.random.default_rng(args.seed).permutation(len(train_y))[:1000], False),
        "300 random, per-tensor": (np.random.default_rng(args.seed).permutation(len(train_y))[:300], True),
    }
    rows = []
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"int8-acc-{os.getpid()}.tflite"
    for name, (idx, per_tensor) in variants.items():
        t = time.perf_counter()
        tmp.write_bytes(to_tflite(model, "full_int8", calibration=train_x[idx], per_tensor=per_tensor))
        secs = time.perf_counter() - t
        scores, ms, _ = run_file(tmp, "tflite", test_x, src.spec)
        d = paired_delta(scores.argmax(1) == test_y, ref_ok)
        rows.append({"variant": name, "calibration": int(len(idx)), "per_tensor": per_tensor,
                     "top1": round(float((scores.argmax(1) == test_y).mean()), 4),
                     "float_top1": round(float(ref_ok.mean()), 4), "delta": round(d["delta"], 2),
                     "ci": [round(v, 2) for v in d["ci"]], "p": round(d["p"], 4),
                     "agreement": round(float((scores.argmax(1) == ref.argmax(1)).mean()), 4),
                     "bytes": tmp.stat().st_size, "ms_per_image": round(ms, 3), "export_s": round(secs, 1),
                     "load": round(os.getloadavg()[0], 2)})
        print(json.dumps(rows[-1]), flush=True)
    tmp.unlink(missing_ok=True)
    cmd = "python benchmarks/int8_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"command": cmd, "images": int(len(test_y)),
                                                            "rows": rows}, indent=1) + "\n")
    md = [f"# int8 PTQ against float on {len(test_y)} held-out images", "", f"`{cmd}`", "",
          "| calibration | top-1 | Δ top-1 [95 % CI] | McNemar p | agreement | bytes | ms/img (validation) |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['variant']} | {r['top1']:.3f} | {format_delta(r['delta'], r['ci'])} | {r['p']:.3f} | "
           f"{r['agreement']:.3f} | {r['bytes']} | {r['ms_per_image']} |" for r in rows]
    md += ["", f"float (Keras) top-1 {rows[0]['float_top1']:.3f}; ~0 = the interval contains 0."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
