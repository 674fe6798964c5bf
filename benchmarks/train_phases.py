"""Train-stage time, phase by phase: phase 1 on cached backbone features (`--cached-views K`) against the
backbone run every epoch (`--cached-views 0`), same data, seed and epochs, runs alternating.

    python benchmarks/train_phases.py --data data/fashion-mnist --sizes 96 --epochs 3 --fine-tune-epochs 2
    python benchmarks/train_phases.py --data /tmp/fm-small --sizes 224 --epochs 2 --fine-tune-epochs 1 \
        --name train_phases_224

Per run: seconds of the backbone feature pass, phase 1 (features + head epochs), s/epoch of each phase,
the whole training, test top-1 and, for comparison, one plain inference pass of the trained model over
the training images (the goal: phase 1 <= 1.2 x that pass + the head's own seconds). Writes
benchmarks/results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"


def one_run(data: str, out: Path, size: int, views: int, args) -> dict:
    from edgelite.train import train
    from edgelite.train.rundir import load_run_model, load_split_images

    load0 = os.getloadavg()[0]
    run = train(data, out, backbone="efficientnet_lite0", image_size=size, epochs=args.epochs,
                fine_tune_epochs=args.fine_tune_epochs, seed=args.seed, cached_views=views, verbose=0, overwrite=True)
    s = run.metrics["seconds"]
    model = load_run_model(run.path)
    x, _y, *_ = load_split_images(run.path, "train")
    model.predict(x[:64].astype("float32"), batch_size=32, verbose=0)  # warm-up: graph building
    t = time.perf_counter()
    model.predict(x.astype("float32"), batch_size=32, verbose=0)
    inference = time.perf_counter() - t
    return {"size": size, "cached_views": views, "train_images": len(x), "features_s": s.get("features"),
            "phase1_s": s.get("phase1"), "phase1_s_per_epoch": s.get("phase1_per_epoch"),
            "phase2_s": s.get("phase2"), "phase2_s_per_epoch": s.get("phase2_per_epoch"),
            "training_s": s["training"], "inference_pass_s": round(inference, 1),
            "test_top1": round(run.metrics["test"]["accuracy"], 4), "load_before": round(load0, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="image folder (edgelite data fashion-mnist ...)")
    ap.add_argument("--sizes", default="96", help="comma-separated image sizes")
    ap.add_argument("--views", default="0,1", help="comma-separated --cached-views values (0 = before)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--fine-tune-epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="train_phases")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(v) for v in args.sizes.split(",")):
            for views in (int(v) for v in args.views.split(",")):
                rows.append(one_run(args.data, Path(tmp) / f"r{size}_{views}", size, views, args))
                print(json.dumps(rows[-1]), flush=True)
    cmd = "python benchmarks/train_phases.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": cmd, "machine": platform.machine(), "cpu_count": os.cpu_count(), "rows": rows,
              "epochs": args.epochs, "fine_tune_epochs": args.fine_tune_epochs, "seed": args.seed}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    cols = ["size", "cached_views", "train_images", "features_s", "phase1_s", "phase1_s_per_epoch", "phase2_s_per_epoch",
            "training_s", "inference_pass_s", "test_top1", "load_before", "load_after"]
    md = [f"# Train stage, phase by phase ({args.epochs} + {args.fine_tune_epochs} epochs, seed {args.seed})", "",
          f"`{cmd}` on {platform.machine()}, {os.cpu_count()} cores (shared; load = 1-min load average).", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join("-" if r.get(c) is None else str(r.get(c)) for c in cols) + " |" for r in rows]
    (RESULTS / f"{args.name}.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
