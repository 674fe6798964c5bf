"""`edgelite adapt` on the demo and one more dataset: the issue's figures, reproducibly.

    .venv/bin/python benchmarks/adapt_demo.py                       # both datasets -> benchmarks/results/
    .venv/bin/python benchmarks/adapt_demo.py --datasets colours --work /tmp/adapt-bench

Per dataset: a labelled folder is split per class into the training photos and held-out photos the
run never sees. The held-out photos go through a synthetic camera (`edgelite.adapt.shift.CameraShift`:
nearest-neighbour resize, blur, colour cast, gamma, sensor noise) and are split per class into an
unlabeled adaptation folder and a labelled evaluation folder (disjoint). Then:

* the source run is trained as `make demo` trains it (Fashion-MNIST: 300/class, EfficientNet-Lite0
  at 96 px, 3 + 2 epochs) — or, for `colours`, on generated coloured
  discs and squares on noisy grey (class = colour: red, green, blue, yellow; tests/kit.py) at 64 px;
* top-1 of the source model on the evaluation images, clean (before the camera) and shifted;
* for each method (bn, tent, pseudo): `edgelite adapt` -> shifted and clean top-1 after, 95 % Wilson
  intervals, the method's wall time and the whole command's;
* each adapted run -> `convert --formats int8 --calibration-data UNLABELED`, scored with the device
  runtime on the shifted evaluation images (int8 drop vs the adapted float model); for bn also with
  calibration on the training split (the default), for comparison.

Writes benchmarks/results/adapt_demo.md and adapt_demo.json, named with the environment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DATASETS = {
    # name: (train per class, held-out per class, model size, epochs, fine-tune epochs)
    "colours": (120, 60, 64, 3, 1),
    "fashion-mnist": (300, 60, 96, 3, 2),
}
METHODS = ("bn", "tent", "pseudo")


def make_data(name: str, work: Path, per: int, held: int) -> tuple[Path, Path]:
    """(training folder, held-out folder): disjoint per class, deterministic."""
    allr = work / "all"
    if name == "fashion-mnist":
        from edgelite.train.demo_data import write_image_folder

        write_image_folder(allr, per_class=per + held, seed=0)
    elif not allr.exists():  # coloured discs and squares on noisy grey; class = colour (tests/kit.py)
        import cv2

        from tests.device.devicekit import LABELS, synth_images

        x, y = synth_images(len(LABELS) * (per + held) * 2, seed=0, size=64)
        for label_id, name in enumerate(LABELS):
            (allr / name).mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(y == label_id)[: per + held]:
                cv2.imwrite(str(allr / name / f"{name}_{i:05d}.png"), cv2.cvtColor(x[i], cv2.COLOR_RGB2BGR))
    data, heldout = work / "data", work / "heldout"
    for d in (data, heldout):
        shutil.rmtree(d, ignore_errors=True)
    for c in sorted(p for p in allr.iterdir() if p.is_dir()):
        files = sorted(f for f in c.rglob("*") if f.is_file())
        order = np.random.default_rng(1).permutation(len(files))
        for rank, i in enumerate(order):
            dest = (heldout if rank < held else data) / c.name
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(files[i], dest / files[i].name)
    return data, heldout


def top1(scores: np.ndarray, y: np.ndarray) -> dict:
    from edgelite.adapt.signals import wilson

    k, n = int((scores.argmax(1) == y).sum()), len(y)
    return {"top1": round(k / n, 4), "ci95": [round(v, 4) for v in wilson(k, n)], "n": n}


def bench_dataset(name: str, work: Path, log) -> dict:
    from edgelite.adapt import adapt
    from edgelite.adapt.images import load_labelled
    from edgelite.adapt.shift import CameraShift, shifted_domain
    from edgelite.convert import convert
    from edgelite.convert.validate import run_file
    from edgelite.train import train
    from edgelite.train.rundir import RunDir

    per, held, size, epochs, ft = DATASETS[name]
    work.mkdir(parents=True, exist_ok=True)
    data, heldout = make_data(name, work, per, held)
    unl, ev = work / "unlabeled", work / "eval"
    for d in (unl, ev):
        shutil.rmtree(d, ignore_errors=True)
    shift = CameraShift(size=size)
    counts = shifted_domain(heldout, unl, ev, shift, seed=0)
    log(f"[{name}] {counts['unlabeled']} unlabeled + {counts['labelled']} labelled shifted images")
    t = time.perf_counter()
    run = train(data, out=work / "run", backbone="efficientnet_lite0", image_size=size, epochs=epochs,
                fine_tune_epochs=ft, seed=0, verbose=0, overwrite=True)
    train_s = time.perf_counter() - t
    labels = run.labels
    x_ev, y_ev, _ = load_labelled(ev, labels, size, run.config.interpolation)
    # the same evaluation images before the camera: held-out/<class>/<stem>.*
    clean_dir = work / "eval_clean"
    shutil.rmtree(clean_dir, ignore_errors=True)
    for f in ev.rglob("*.png"):
        (orig,) = [p for p in (heldout / f.parent.name).iterdir() if p.stem == f.stem]
        (clean_dir / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(orig, clean_dir / f.parent.name / orig.name)
    x_cl, y_cl, _ = load_labelled(clean_dir, labels, size, run.config.interpolation)
    model = run.load_model()
    res = {"dataset": name, "train_images_per_class": per, "image_size": size, "classes": len(labels),
           "unlabeled": counts["unlabeled"], "eval": counts["labelled"], "train_seconds": round(train_s, 1),
           "source_test_top1": run.metrics["test"]["accuracy"],
           "before": {"clean": top1(model.predict(x_cl.astype(np.float32), verbose=0), y_cl),
                      "shifted": top1(model.predict(x_ev.astype(np.float32), verbose=0), y_ev)},
           "methods": {}, "shift": shift.__dict__ | {"cast": list(shift.cast)}}
    log(f"[{name}] source: clean {res['before']['clean']['top1']:.3f}, shifted {res['before']['shifted']['top1']:.3f}")
    bundles = work / "bundles"
    for method in METHODS:
        t = time.perf_counter()
        a = adapt(run.path, unl, work / f"run-{method}", method=method, overwrite=True, verbose=False)
        wall = time.perf_counter() - t
        m = RunDir.load(a.path).load_model()
        fs = m.predict(x_ev.astype(np.float32), verbose=0)
        row = {"shifted": top1(fs, y_ev), "clean": top1(m.predict(x_cl.astype(np.float32), verbose=0), y_cl),
               "method_seconds": a.report["seconds"], "wall_seconds": round(wall, 1),
               "collapse_warning": bool(a.warnings)}
        calibs = {"target": unl, "training": None} if method == "bn" else {"target": unl}
        for which, cdir in calibs.items():
            b = convert(a.path, bundles / f"{method}-{which}", formats="int8", calibration=200,
                        calibration_data=cdir, overwrite=True, verbose=False)
            entry = next(e for e in b.models if e.name == "int8")
            scores, _, _ = run_file(b.root / entry.path, "tflite", x_ev, b.input)
            q = top1(scores, y_ev)
            row[f"int8_{which}_calibration"] = {"shifted": q, "drop_pts": round((row["shifted"]["top1"] - q["top1"]) * 100, 1),
                                                "clean_split_drop_pts": round(-(entry.metrics.get("delta") or 0.0), 1)}
        res["methods"][method] = row
        log(f"[{name}] {method}: shifted {row['shifted']['top1']:.3f}, clean {row['clean']['top1']:.3f}, "
            f"{row['method_seconds']} s; int8 (target calib) {row['int8_target_calibration']['shifted']['top1']:.3f}")
    return res


def ci(d: dict) -> str:
    return f"{d['top1']:.3f} [{d['ci95'][0]:.2f}, {d['ci95'][1]:.2f}]"


def markdown(results: list[dict], env: dict, cmd: str) -> str:
    out = ["# `edgelite adapt` — domain adaptation figures", "",
           f"Command: `{cmd}`  ", f"Environment: {env['machine']}, {env['cpus']} CPUs, Python {env['python']}, "
           f"TensorFlow {env['tensorflow']}, {env['date']}", "",
           "Top-1 on the same labelled evaluation images, before the synthetic camera (clean) and after it "
           "(shifted), with 95 % Wilson intervals. Adaptation used only the disjoint unlabeled folder. "
           "Method time = the adaptation itself; wall = the whole `adapt` call (loading, before/after signals, "
           "writing the run). int8 = `convert --formats int8 --calibration-data UNLABELED`, scored by the device "
           "runtime on the shifted evaluation images; drop = adapted float minus int8, in points.", ""]
    for r in results:
        b = r["before"]
        lost = b["clean"]["top1"] - b["shifted"]["top1"]
        out += [f"## {r['dataset']} ({r['classes']} classes, {r['train_images_per_class']}/class, "
                f"{r['image_size']} px; {r['unlabeled']} unlabeled, {r['eval']} evaluation images)", "",
                "| model | clean top-1 | shifted top-1 | recovered | method s | wall s | int8 shifted | int8 drop |",
                "|---|---|---|---|---|---|---|---|",
                f"| source | {ci(b['clean'])} | {ci(b['shifted'])} | — | — | — | — | — |"]
        for m, row in r["methods"].items():
            rec = (row["shifted"]["top1"] - b["shifted"]["top1"]) / lost if lost > 0 else float("nan")
            q = row["int8_target_calibration"]
            out.append(f"| {m} | {ci(row['clean'])} | {ci(row['shifted'])} | {rec:.0%} | {row['method_seconds']} | "
                       f"{row['wall_seconds']} | {ci(q['shifted'])} | {q['drop_pts']:+.1f} |")
        bn = r["methods"]["bn"]
        out += ["", f"int8 calibration of the bn run, on the shifted evaluation images: target frames "
                f"{ci(bn['int8_target_calibration']['shifted'])} (drop {bn['int8_target_calibration']['drop_pts']:+.1f}), "
                f"training split {ci(bn['int8_training_calibration']['shifted'])} "
                f"(drop {bn['int8_training_calibration']['drop_pts']:+.1f}).", "",
                f"Source run: test-split top-1 {r['source_test_top1']:.3f}, trained in {r['train_seconds']} s. "
                f"Camera shift: {r['shift']}", ""]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma list of " + ", ".join(DATASETS))
    ap.add_argument("--work", default="/tmp/edgelite-adapt-bench", help="scratch folder")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="results folder")
    args = ap.parse_args(argv)
    import tensorflow as tf

    def log(msg):
        print(msg, flush=True)

    results = [bench_dataset(n, Path(args.work) / n, log) for n in args.datasets.split(",")]
    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
           "tensorflow": tf.__version__, "date": dt.date.today().isoformat()}
    cmd = "python benchmarks/adapt_demo.py" + (f" --datasets {args.datasets}" if argv else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapt_demo.json").write_text(json.dumps({"environment": env, "command": cmd, "results": results},
                                                    indent=1) + "\n")
    (out / "adapt_demo.md").write_text(markdown(results, env, cmd))
    print(markdown(results, env, cmd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
