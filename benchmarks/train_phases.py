"""The train stage before/after training on cached activations: `edgelite train` with the frozen layers
run once (`--cached-views K`, default 1) against the whole backbone every epoch (`--cached-views 0`),
same data, seeds and epochs, the order alternating from seed to seed.

    python benchmarks/train_phases.py --data data/fashion-mnist --sizes 96 --seeds 0,1,2,3
    python benchmarks/train_phases.py --data /tmp/fm-small --sizes 224 --seeds 0 --fine-tune-epochs 1 \
        --name train_phases_224

Each run is the demo's command (`edgelite train DATA --out RUN --backbone efficientnet_lite0 --image-size S
--epochs 3 --fine-tune-epochs 2 --seed N --cached-views K`) in a fresh process, timed wall to wall like
`make demo`'s train stage; from its metrics.json: the frozen-layer pass, each phase's seconds and
s/epoch; then every held-out image's correctness, so the accuracy change of each seed pair gets a
paired 95 % interval (edgelite.stats), and one over all pairs pooled. For the phase-1 goal, one plain
inference pass over the training images is timed per size. Writes benchmarks/results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = Path(__file__).resolve().parent / "results"


def one_run(data: str, out: Path, size: int, views: int, seed: int, args) -> tuple[dict, list[bool]]:
    cmd = [sys.executable, "-m", "edgelite.cli", "train", data, "--out", str(out), "--backbone", "efficientnet_lite0",
           "--image-size", str(size), "--epochs", str(args.epochs), "--fine-tune-epochs", str(args.fine_tune_epochs),
           "--seed", str(seed), "--cached-views", str(views), "--overwrite"]
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - t
    m = json.loads((out / "metrics.json").read_text())
    s = m["seconds"]
    correct = test_correctness(out)
    row = {"size": size, "seed": seed, "cached_views": views, "train_images": m["images"]["train"],
           "stage_s": round(wall, 1), "training_s": s["training"], "features_s": s.get("features"),
           "phase1_s": s.get("phase1"), "phase1_s_per_epoch": s.get("phase1_per_epoch"),
           "phase2_s": s.get("phase2"), "phase2_s_per_epoch": s.get("phase2_per_epoch"),
           "test_top1": round(m["test"]["accuracy"], 4), "test_images": len(correct),
           "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}
    return row, correct


def test_correctness(run: Path) -> list[bool]:
    import numpy as np

    from edgelite.train.rundir import load_run_model, load_split_images

    x, y, *_ = load_split_images(run, "test")
    probs = load_run_model(run).predict(x.astype("float32"), batch_size=64, verbose=0)
    return [bool(v) for v in np.argmax(probs, 1) == np.asarray(y)]


def inference_pass(run: Path) -> float:
    """Seconds of one plain inference pass of the trained model over the training images (after a warm-up)."""
    from edgelite.train.rundir import load_run_model, load_split_images

    model = load_run_model(run)
    x, *_ = load_split_images(run, "train")
    model.predict(x[:64].astype("float32"), batch_size=32, verbose=0)
    t = time.perf_counter()
    model.predict(x.astype("float32"), batch_size=32, verbose=0)
    return round(time.perf_counter() - t, 1)


def summarise(rows: list[dict], correct: dict, before: int, after: int) -> dict:
    from edgelite.stats import paired_delta

    out = {}
    for size in sorted({r["size"] for r in rows}):
        mine = [r for r in rows if r["size"] == size]
        seeds = sorted({r["seed"] for r in mine})

        def med(views, key, mine=mine):
            vals = [r[key] for r in mine if r["cached_views"] == views and r.get(key) is not None]
            return round(statistics.median(vals), 3) if vals else None

        pairs, pooled_a, pooled_b = [], [], []
        for seed in seeds:
            a, b = correct.get((size, seed, after)), correct.get((size, seed, before))
            if a is None or b is None:
                continue
            d = paired_delta(a, b)
            pairs.append({"seed": seed, "delta": d["delta"], "ci": d["ci"], "p": d["p"]})
            pooled_a += a
            pooled_b += b
        out[str(size)] = {
            "seeds": seeds,
            **{f"{k}_{tag}": med(v, k) for tag, v in (("before", before), ("after", after))
               for k in ("stage_s", "training_s", "features_s", "phase1_s", "phase1_s_per_epoch", "phase2_s",
                         "phase2_s_per_epoch", "test_top1")},
            "stage_ratio": None if not med(before, "stage_s") else round(med(after, "stage_s") / med(before, "stage_s"), 3),
            "pairs": pairs,
            "pooled": paired_delta(pooled_a, pooled_b) if pooled_a else None,
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="image folder (edgelite data fashion-mnist ...)")
    ap.add_argument("--sizes", default="96", help="comma-separated image sizes")
    ap.add_argument("--views", default="0,1", help="BEFORE,AFTER --cached-views values (0 = the backbone every epoch)")
    ap.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds: one before/after pair each")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--fine-tune-epochs", type=int, default=2)
    ap.add_argument("--name", default="train_phases")
    args = ap.parse_args(argv)
    before, after = (int(v) for v in args.views.split(","))
    rows, correct, passes = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(v) for v in args.sizes.split(",")):
            for i, seed in enumerate(int(v) for v in args.seeds.split(",")):
                for views in ((before, after) if i % 2 == 0 else (after, before)):  # alternate the order
                    out = Path(tmp) / f"r{size}_{seed}_{views}"
                    row, correct[(size, seed, views)] = one_run(args.data, out, size, views, seed, args)
                    if size not in passes:
                        passes[size] = row["inference_pass_s"] = inference_pass(out)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = summarise(rows, correct, before, after)
    cmd = "python benchmarks/train_phases.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": cmd, "machine": platform.machine(), "cpu_count": os.cpu_count(), "epochs": args.epochs,
              "fine_tune_epochs": args.fine_tune_epochs, "inference_pass_s": passes, "summary": summary, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(result, before, after))
    print(markdown(result, before, after))
    return 0


def markdown(result: dict, before: int, after: int) -> str:
    from edgelite.stats import format_delta

    cols = ["size", "seed", "cached_views", "train_images", "stage_s", "training_s", "features_s", "phase1_s",
            "phase1_s_per_epoch", "phase2_s", "phase2_s_per_epoch", "test_top1", "load_before", "load_after"]
    md = [f"# Train stage before (`--cached-views {before}`) and after (`--cached-views {after}`), "
          f"{result['epochs']} + {result['fine_tune_epochs']} epochs", "",
          f"`{result['command']}` on {result['machine']}, {result['cpu_count']} cores; stage_s = wall time of the "
          "`edgelite train` process (what `make demo`'s train stage takes); load = 1-min load average.", ""]
    for size, s in result["summary"].items():
        pooled = s["pooled"]
        md += [f"## {size} px, seeds {', '.join(map(str, s['seeds']))} (medians)", "",
               "| figure | before | after |", "|---|---:|---:|"]
        for k in ("stage_s", "training_s", "features_s", "phase1_s", "phase1_s_per_epoch", "phase2_s",
                  "phase2_s_per_epoch", "test_top1"):
            md.append(f"| {k} | {s[k + '_before']} | {s[k + '_after']} |")
        md += ["", f"- train stage after/before: **{s['stage_ratio']}**; one plain inference pass over the training "
                   f"images: {result['inference_pass_s'].get(size, result['inference_pass_s'].get(int(size)))} s"]
        for p in s["pairs"]:
            md.append(f"- seed {p['seed']}: Δ top-1 after − before {format_delta(p['delta'], p['ci'])} pt "
                      f"(McNemar p = {p['p']:.2f})")
        if pooled:
            md.append(f"- all pairs pooled ({pooled['images']} image-runs): Δ top-1 "
                      f"{format_delta(pooled['delta'], pooled['ci'])} pt, "
                      f"{'distinguishable from 0' if pooled['distinguishable'] else 'not distinguishable from 0'} "
                      f"(McNemar p = {pooled['p']:.2f})")
        md.append("")
    md += ["## Runs", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join("-" if r.get(c) is None else str(r.get(c)) for c in cols) + " |" for r in result["rows"]]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
