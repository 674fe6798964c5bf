"""The `edgelite review` loop end to end, as a new user runs it: the issue's "done means" figure.

    .venv/bin/python benchmarks/review_loop.py                 # -> benchmarks/results/review.md / review.json
    .venv/bin/python benchmarks/review_loop.py --work /tmp/review-loop --label 100

1. The demo run (`make demo`: runs/demo, EfficientNet-Lite0 at 96 px on data/fashion-mnist) — read only;
   the data folder is copied into the work folder (labelling writes there).
2. A shifted camera: Fashion-MNIST test images the run never saw (not in heldout.txt) through
   `adapt`'s synthetic camera (CameraShift: nearest resize, blur, colour cast, gamma, noise). Per
   class, half become the device's frames (named as `run --save-uncertain` names them), half a labelled
   shifted evaluation folder that nothing trains or adapts on.
3. `edgelite review FRAMES --data DATA --run runs/demo` serves the page; headless Chromium labels the
   --label most uncertain frames by key (1-9) and mouse (the 10th class), as a person would who knows
   the answer (the true class), discards none, undoes one and relabels it.
4. `edgelite review --data DATA --run runs/demo --retrain runs/reviewed`, then
   `edgelite convert runs/reviewed --formats fp32`; the fp32 bundle is scored with the device
   runtime on the shifted evaluation folder.
5. For comparison, `edgelite adapt runs/demo --unlabeled FRAMES` (bn, the default) on the same frames.

Top-1 on the shifted evaluation folder with 95 % Wilson intervals, and paired Δ (edgelite.stats) against
the source run. Writes benchmarks/results/review.md and review.json, named with the environment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

MAIN = Path("/work/main")


def cli(*args, timeout=3600) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "edgelite", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env, cwd=ROOT)
    if p.returncode:
        raise SystemExit(f"edgelite {args[0]} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout + p.stderr


def shifted_frames(work: Path, data: Path, per_class: int, seed: int) -> tuple[Path, Path, dict]:
    """FRAMES (device frames, uncertain-style names) and EVAL/<class>/ from unseen, shifted test images."""
    import cv2

    from edgelite.adapt.shift import CameraShift
    from edgelite.device.outputs.card import save_jpeg
    from edgelite.device.outputs.uncertain import time_stamp
    from edgelite.train.demo_data import FASHION_MNIST_CLASSES, load_fashion_mnist, read_heldout_list

    (_, _), (x_test, y_test) = load_fashion_mnist()
    used = {int(Path(p).stem.rsplit("_", 1)[1]) for p in read_heldout_list(data) or []}
    rng = np.random.default_rng(seed)
    shift = CameraShift(size=96)
    frames, evald = work / "frames", work / "eval"
    frames.mkdir(parents=True, exist_ok=True)
    truth: dict[str, str] = {}
    t = 1796071501.0
    for c, name in enumerate(FASHION_MNIST_CLASSES):
        idx = [i for i in rng.permutation(np.flatnonzero(y_test == c)) if int(i) not in used][: 2 * per_class]
        for k, i in enumerate(idx):
            rgb = shift(np.repeat(x_test[i][..., None], 3, axis=2), rng)
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            if k < per_class:
                t += 7.0
                # the device's model guesses are re-scored by `review --run`; the name carries the time
                path = save_jpeg(frames, f"{time_stamp(t)}_none", bgr)
                truth[path.name] = name
            else:
                (evald / name).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(evald / name / f"{name}_test_{i:05d}.png"), bgr)
    return frames, evald, truth


def label_in_browser(frames: Path, data: Path, run: Path, truth: dict, n: int) -> dict:
    """`edgelite review` + headless Chromium: the n most uncertain frames labelled with their true class."""
    from tests.review.cdpkit import Browser

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "edgelite", "review", str(frames), "--data", str(data), "--run",
                             str(run), "--http", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    t0 = time.perf_counter()
    line = proc.stdout.readline()
    t_start = time.perf_counter() - t0
    url = line.split(" at ", 1)[1].split()[0]
    out: dict = {"start_seconds": round(t_start, 1)}
    try:
        with Browser() as b:
            t0 = time.perf_counter()
            b.goto(url + "?per=200")
            b.wait("document.querySelectorAll('.tile').length > 0 && [...document.images].every(i => i.complete)")
            out["page_seconds"] = round(time.perf_counter() - t0, 2)
            labels = b.js("data.labels")
            keys = mouse = 0
            for k in range(n):
                it = b.js(f"data.items[{k}]")
                want = truth[it["name"]]
                b.wait(f"document.querySelector('.tile.sel').dataset.i === '{k}'")
                if labels.index(want) < 9:
                    b.key(str(labels.index(want) + 1))
                    keys += 1
                else:
                    b.click(f"button.cls[data-label='{want}']")
                    mouse += 1
                b.wait(f"data.items[{k}].decided !== null")
                if k == 10:  # a slip, taken back and done again
                    b.key("u")
                    b.wait(f"data.items[{k}].decided === null")
                    b.key(str(labels.index(want) + 1)) if labels.index(want) < 9 else \
                        b.click(f"button.cls[data-label='{want}']")
                    b.wait(f"data.items[{k}].decided !== null")
            out.update(keys=keys, mouse=mouse, labelled=n)
            b.screenshot(frames.parent / "review-page.png")
            small_png(frames.parent / "review-page.png", ROOT / "docs" / "review-page.png")
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    return out


def small_png(src: Path, dest: Path, colours: int = 256) -> None:
    """The README's screenshot at a fraction of its bytes: a 256-colour palette."""
    from PIL import Image

    with Image.open(src) as im:
        im.convert("RGB").quantize(colours).save(dest, optimize=True)


def score(target: Path, evald: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(per-image correct, labels, classes) of a run's Keras model or a bundle's fp32 model on EVAL/<class>/."""
    from edgelite.adapt.images import load_labelled
    from edgelite.train.rundir import RunDir

    if (target / "edgelite.json").is_file():
        from edgelite.bundle import Bundle
        from edgelite.device.runtime import load_from_bundle

        bundle = Bundle.load(target)
        labels = bundle.labels
        model, _ = load_from_bundle(bundle, "fp32")
        x, y, _ = load_labelled(evald, labels, model.input_height, "bilinear")
        pred = np.asarray([int(np.argmax(model.classify(img))) for img in x])
        return pred == y, y, labels
    run = RunDir.load(target)
    x, y, _ = load_labelled(evald, run.labels, run.config.image_size, run.config.interpolation)
    pred = run.load_model().predict(x.astype(np.float32), batch_size=64, verbose=0).argmax(1)
    return pred == y, y, run.labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/review-loop")
    ap.add_argument("--run", default=str(MAIN / "runs" / "demo"))
    ap.add_argument("--data", default=str(MAIN / "data" / "fashion-mnist"))
    ap.add_argument("--per-class", type=int, default=30, help="device frames per class (as many again to evaluate)")
    ap.add_argument("--label", type=int, default=100, help="frames labelled in the browser")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = work / "data"
    shutil.copytree(a.data, data)
    run = Path(a.run)
    times: dict[str, float] = {}

    t = time.perf_counter()
    frames, evald, truth = shifted_frames(work, data, a.per_class, a.seed)
    shutil.copytree(frames, work / "frames-for-adapt")  # labelling moves the frames; adapt gets the same ones
    times["frames"] = time.perf_counter() - t
    t = time.perf_counter()
    browser = label_in_browser(frames, data, run, truth, a.label)
    times["review"] = time.perf_counter() - t
    t = time.perf_counter()
    retrain_out = cli("review", "--data", data, "--run", run, "--retrain", work / "runs" / "reviewed")
    times["retrain"] = time.perf_counter() - t
    t = time.perf_counter()
    cli("convert", work / "runs" / "reviewed", "--out", work / "bundles" / "reviewed", "--formats", "fp32",
        "--data", data, "-q")
    times["convert"] = time.perf_counter() - t
    t = time.perf_counter()
    cli("adapt", run, "--unlabeled", work / "frames-for-adapt", "--out", work / "runs" / "adapted", "--data", data,
        "-q")
    times["adapt"] = time.perf_counter() - t
    t = time.perf_counter()  # both: adapt on the frames, then retrain the adapted run on the same labels
    both_out = cli("review", "--data", data, "--run", work / "runs" / "adapted", "--retrain", work / "runs" / "both")
    times["adapt_then_retrain"] = time.perf_counter() - t

    from edgelite.adapt.signals import wilson
    from edgelite.stats import paired_delta

    base, y, labels = score(run, evald)
    rows = {"source run": (base, None)}
    for name, target in (("review + retrain", work / "runs" / "reviewed"),
                         ("review + retrain, fp32 bundle", work / "bundles" / "reviewed"),
                         ("adapt (bn)", work / "runs" / "adapted"),
                         ("adapt (bn), then review + retrain", work / "runs" / "both")):
        ok, _, _ = score(target, evald)
        rows[name] = (ok, paired_delta(ok, base))
    metrics = json.loads((work / "runs" / "reviewed" / "metrics.json").read_text())["adaptation"]
    record = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "python": platform.python_version(), "eval_images": int(len(y)), "browser": browser,
              "times_s": {k: round(v, 1) for k, v in times.items()}, "retrain": metrics,
              "rows": {k: {"top1": float(ok.mean()), "ci95": list(wilson(int(ok.sum()), len(ok))), "delta": d}
                       for k, (ok, d) in rows.items()}}
    (ROOT / "benchmarks" / "results" / "review.json").write_text(json.dumps(record, indent=1) + "\n")
    write_md(record, retrain_out, both_out)
    print((ROOT / "benchmarks" / "results" / "review.md").read_text())


def write_md(r: dict, retrain_out: str, both_out: str) -> None:
    from edgelite.stats import format_delta

    lines = ["# `edgelite review` — label uncertain frames, retrain, convert", "",
             "Command: `.venv/bin/python benchmarks/review_loop.py`  ",
             f"Environment: {r['machine']}, Python {r['python']}, {r['date']} (2 cores shared with other jobs: "
             "times are upper bounds)", "",
             f"Shifted evaluation folder: {r['eval_images']} unseen Fashion-MNIST test images through adapt's "
             "synthetic camera; nothing below trained or adapted on them. Top-1 with 95 % Wilson intervals; "
             "Δ = paired difference to the source run in points with its 95 % interval (edgelite.stats).", "",
             "| model | shifted top-1 | Δ vs source |", "|---|---|---|"]
    for name, row in r["rows"].items():
        d = row["delta"]
        lines.append(f"| {name} | {row['top1']:.3f} [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}] | "
                     f"{format_delta(d['delta'], d['ci']) if d else '—'} |")
    b = r["browser"]
    lines += ["", f"Browser: {b['labelled']} frames labelled in headless Chromium ({b['keys']} by key, {b['mouse']} "
              f"by mouse; one undone and redone); `edgelite review --run` started (index + scoring) in "
              f"{b['start_seconds']} s, first page of 200 with thumbnails in {b['page_seconds']} s.",
              f"Times (s): {r['times_s']}", "", "`edgelite review --retrain` printed:", "", "```",
              retrain_out.strip(), "```", "", "and on the adapted run (`--run runs/adapted`):", "", "```",
              both_out.strip(), "```", ""]
    (ROOT / "benchmarks" / "results" / "review.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
