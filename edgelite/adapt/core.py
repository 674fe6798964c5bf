"""`adapt`: a trained run + unlabeled images from the device's camera -> a new run for that domain.
(The example needs TensorFlow, a run and camera frames: skipped as a doctest.)

    >>> from edgelite.adapt import adapt                                                  # doctest: +SKIP
    >>> r = adapt("runs/demo", unlabeled="frames/", out="runs/demo-cam", eval_dir="labelled/")  # doctest: +SKIP
    >>> r.report["eval"]["before"]["top1"], r.report["eval"]["after"]["top1"]              # doctest: +SKIP

The source run is only read, through `edgelite.train.rundir.RunDir` (which owns the run folder's
names). The new run has the source run's shape, so `convert`, `bench`, `deploy` and a further `adapt`
take it unchanged; it is built in a hidden folder and renamed into place (`RunDir.staged`), so a crash
never leaves half a run. Its config.yaml and metrics.json carry an ``adaptation`` section (method,
settings, images, time, before/after signals, --eval results).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.adapt.errors import AdaptError
from edgelite.train.errors import DataError, TrainError
from edgelite.train.rundir import ADAPT_HISTORY, ADAPTATION, CONFIG, CURVES, HISTORY, PSEUDO_LABELS, RunDir

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

METHODS = ("bn", "tent", "pseudo")
MIN_IMAGES = 16  # per-channel statistics of the last layers (a few pixels each) need at least this many
SOURCE_IMAGES = 512  # training images sampled for the training statistics
# bn's target pass holds all its images' activations at once: 384 images at 96 px (~1 GB peak for Lite0),
# fewer at larger sizes (70 at 224 px); a seeded sample when the folder has more
BN_PIXELS = 384 * 96 * 96
CARRIED = (HISTORY, CURVES)  # carried over from the source run unchanged: its training history


@dataclasses.dataclass
class Adapted:
    """What `adapt` returns: the new run and the record written into its metrics.json."""

    path: Path
    report: dict[str, Any]
    warnings: list[str]


@dataclasses.dataclass
class Settings:
    method: str = "bn"
    steps: int = 40  # tent
    lr: float | None = None  # tent 1e-3, pseudo 1e-4
    diversity: float = 1.0  # tent
    threshold: float = 0.8  # pseudo
    epochs: int = 5  # pseudo
    batch_size: int | None = None
    max_images: int | None = None
    seed: int = 0

    def check(self) -> Settings:
        if self.method not in METHODS:
            raise AdaptError(f"--method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.steps < 1 or self.epochs < 1:
            raise AdaptError("--steps and --epochs must be at least 1")
        if self.lr is not None and not self.lr > 0:
            raise AdaptError(f"--lr {self.lr}: give a positive learning rate")
        if not 0.0 < self.threshold < 1.0:
            raise AdaptError(f"--threshold {self.threshold}: give a confidence in (0, 1), e.g. 0.8")
        if self.diversity < 0:
            raise AdaptError("--diversity must be >= 0")
        if self.batch_size is not None and self.batch_size < 1:
            raise AdaptError("--batch-size must be at least 1")
        if self.max_images is not None and self.max_images < MIN_IMAGES:
            raise AdaptError(f"--max-images {self.max_images}: at least {MIN_IMAGES}")
        return self


def adapt(run: str | os.PathLike, unlabeled: str | os.PathLike, out: str | os.PathLike, *, method: str = "bn",
          eval_dir: str | os.PathLike | None = None, data: str | os.PathLike | None = None, overwrite: bool = False,
          steps: int = 40, lr: float | None = None, diversity: float = 1.0, threshold: float = 0.8, epochs: int = 5,
          batch_size: int | None = None, max_images: int | None = None, seed: int = 0,
          verbose: bool = True) -> Adapted:
    """Adapt the run at `run` to the images under `unlabeled`; write the adapted run to `out`.

    method: "bn" (default; BatchNorm statistics matched layer by layer, weights unchanged), "tent"
    (bn, then `steps` entropy-minimisation steps on BatchNorm scale/offset at `lr`, default 1e-3), or
    "pseudo" (bn, then `epochs` of head + top-block fine-tuning on predictions >= `threshold`, lr
    default 1e-4). eval_dir: a labelled target folder (<class>/*.jpg) scored before and after.
    data: the training photos when they moved since `edgelite train`. Raises AdaptError (one line).
    """
    t_start = time.perf_counter()
    s = Settings(method=method, steps=steps, lr=lr, diversity=diversity, threshold=threshold, epochs=epochs,
                 batch_size=batch_size, max_images=max_images, seed=seed).check()
    say = _Say(verbose)
    show = verbose and sys.stderr.isatty()  # progress bars only on a terminal
    src = open_source(run)
    out = check_out(out, src, overwrite)
    size, interp = src.config.image_size, src.config.interpolation
    bs = s.batch_size or src.config.batch_size

    x_t, rels, skipped = _images_or_error(unlabeled, size, interp, s, show)
    if skipped:
        say(f"skipped {len(skipped)} unreadable file(s) in {unlabeled}, e.g. {skipped[0][0]} ({skipped[0][1]})")
    x_eval = y_eval = None
    if eval_dir is not None:
        from edgelite.adapt.images import load_labelled

        x_eval, y_eval, _ = load_labelled(eval_dir, src.labels, size, interp, progress=show)
        overlap = _overlap(x_t, x_eval)
        if overlap:
            say(f"warning: {overlap} --eval image(s) are also in --unlabeled; the before/after figures are "
                "optimistic — keep the two folders disjoint")

    model = _run_step(src.load_model)
    from edgelite.adapt.batchnorm import batchnorm_layers, require_batchnorm

    bn_layers = require_batchnorm(model, s.method, src.path) if s.method in ("bn", "tent") else batchnorm_layers(model)
    if int(model.outputs[0].shape[-1]) != len(src.labels):
        raise AdaptError(f"{src.path}: the model outputs {model.outputs[0].shape[-1]} classes but labels.txt names "
                         f"{len(src.labels)}; re-run `edgelite train`")
    say(f"adapting {src.path} ({src.config.backbone or 'model'}, {size}x{size}, {len(src.labels)} classes) to "
        f"{len(x_t)} unlabeled images from {unlabeled} with --method {s.method} -> {out}")

    train_hist = np.bincount([y for _, y in src.split.train], minlength=len(src.labels)).astype(np.float64)
    probs_t0 = predict(model, x_t, bs)
    before = _signals(model, probs_t0, train_hist, x_eval, y_eval, src.labels, bs)
    say(_describe("before", before))

    progress = _progress if verbose else None
    record: dict[str, Any] = {"method": s.method, "source_run": str(src.path.resolve()),
                              "unlabeled": str(Path(unlabeled).resolve()), "images": int(len(x_t)),
                              "skipped": len(skipped), "seed": s.seed}
    history: list[dict] = []
    extra: dict[str, str] = {}
    t_method = time.perf_counter()
    if bn_layers:
        from edgelite.adapt.batchnorm import adapt_batchnorm

        x_s, _ = split_images(src, "train", data, limit=SOURCE_IMAGES, seed=s.seed, progress=show)
        x_bn = x_t
        n_bn = max(MIN_IMAGES, BN_PIXELS // (size * size))
        if len(x_t) > n_bn:
            x_bn = x_t[np.sort(np.random.default_rng(s.seed).permutation(len(x_t))[:n_bn])]
            say(f"bn: statistics from a sample of {n_bn} of the {len(x_t)} images (memory budget at {size} px)")
        record["bn"] = adapt_batchnorm(model, bn_layers, x_s, x_bn, batch_size=bs, progress=progress)
    else:
        say("the model has no BatchNorm layers: pseudo-labelling without the bn step")
    if s.method == "tent":
        from edgelite.adapt.tent import adapt_tent

        record["tent"], history = adapt_tent(model, bn_layers, x_t, steps=s.steps, lr=s.lr or 1e-3, batch_size=bs,
                                             diversity=s.diversity, seed=s.seed, progress=progress)
    elif s.method == "pseudo":
        from edgelite.adapt.pseudo import adapt_pseudo, pseudo_labels_csv

        record["pseudo"], history, probs_p, used = adapt_pseudo(model, x_t, src.config.backbone, threshold=s.threshold,
                                                               epochs=s.epochs, lr=s.lr or 1e-4, batch_size=bs,
                                                               seed=s.seed)
        record["pseudo"]["list"] = PSEUDO_LABELS
        extra[PSEUDO_LABELS] = pseudo_labels_csv(rels, probs_p, used, src.labels)
    record["seconds"] = round(time.perf_counter() - t_method, 1)

    after = _signals(model, predict(model, x_t, bs), train_hist, x_eval, y_eval, src.labels, bs)
    say(_describe("after ", after))
    from edgelite.adapt.signals import collapse_warning

    warnings = []
    w = collapse_warning(after["label_free"], before["label_free"], train_hist, src.labels)
    if w:
        warnings.append(w)
        say(f"warning: {w}")
    record["before"], record["after"] = before, after
    if eval_dir is not None:
        record["eval_dir"] = str(Path(eval_dir).resolve())

    # the adapted model on the run's own (clean) held-out split: what the new domain cost the old one
    from edgelite.train import report

    x_test, y_test = split_images(src, "test", data, progress=show)
    metrics = report.classification_metrics(y_test, predict(model, x_test, bs), src.labels)
    src_test = (src.metrics.get("test") or {}).get("accuracy")
    record["clean_test"] = {"before": src_test, "after": metrics["test"]["accuracy"], "n": int(len(y_test))}
    say(f"clean held-out split of the source run: top-1 {_fmt(src_test)} -> {metrics['test']['accuracy']:.3f}")
    for k in ("train", "val", "images", "skipped"):
        if k in src.metrics:
            metrics[k] = src.metrics[k]
    record["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    record["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    record["settings"] = _settings_record(s, bs)
    record["warnings"] = warnings
    metrics[ADAPTATION] = record
    config_record = {"method": s.method, "source_run": record["source_run"], "unlabeled": record["unlabeled"],
                     **record["settings"]}
    write_run(src, out, model, data=data, adaptation=config_record, metrics=metrics, history=history, extra=extra)
    say(f"adapted run written to {out} in {record['wall_seconds']:.0f} s (method {record['seconds']:.0f} s); "
        f"next: edgelite convert {out} --out bundles/{out.name} --calibration-data {unlabeled}")
    return Adapted(path=out, report=record, warnings=warnings)


# ------------------------------------------------------------------------------------------ the runs
def _run_step(step, *args, **kwargs):
    """A RunDir call whose one-line TrainError/DataError becomes adapt's (same exit code, same message)."""
    try:
        return step(*args, **kwargs)
    except (TrainError, DataError) as e:
        raise AdaptError(str(e)) from None


def open_source(path: str | os.PathLike) -> RunDir:
    """The run to adapt, written by `edgelite train` or `edgelite adapt`; read only."""
    return _run_step(RunDir.load, path)


def split_images(src: RunDir, subset: str, data, **kw) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N x H x W x 3 RGB, int64 labels) of a split of the run's own photos (at `data` when they moved)."""
    x, y, _ = _run_step(src.images, subset, data_dir=data, **kw)
    if not len(y):
        where = data if data is not None else src.split.data_dir
        raise AdaptError(f"no readable {subset} images of {src.path} under {where}; pass --data DIR "
                         "pointing at the photos the run was trained on")
    return x, y.astype(np.int64)


def check_out(out: str | os.PathLike, source: RunDir, overwrite: bool) -> Path:
    """The destination folder, refused when it is the source run or holds something without --overwrite."""
    out = Path(out)
    try:
        same = out.resolve() == source.path.resolve() or source.path.resolve() in out.resolve().parents
    except OSError:
        same = False
    if same:
        raise AdaptError("--out must be a new folder, not the source run (the source run is never modified); "
                         "e.g. --out runs/NAME-adapted")
    if out.exists() and not out.is_dir():
        raise AdaptError(f"--out {out} is a file; give a folder for the adapted run")
    if RunDir(out).holds_files():
        if not overwrite:
            raise AdaptError(f"--out {out} already holds files; pass --overwrite to replace it or choose another folder")
        if not RunDir(out).file(CONFIG).is_file():
            raise AdaptError(f"--out {out} is not a run directory; --overwrite replaces only a run, choose another folder")
    return out


def write_run(src: RunDir, out: Path, model, *, data, adaptation: dict[str, Any], metrics: dict[str, Any],
               history: list[dict[str, Any]], extra: dict[str, str]) -> None:
    """The adapted run at `out`: the source run's shape with `adaptation` in config.yaml (and, by the caller,
    metrics.json); `extra` = {RunDir file name: text}. --data: the new run points at the moved photos."""
    from edgelite.train.report import write_history

    split, config = src.split, dataclasses.replace(src.config, out=str(out))
    if data is not None and Path(data).resolve() != Path(split.data_dir).resolve():
        split = dataclasses.replace(split, data_dir=str(Path(data).resolve()))
        config = dataclasses.replace(config, data_dir=split.data_dir)
    for layer in model.layers:
        layer.trainable = True
    with RunDir.staged(out) as new:
        new.config, new.labels, new.split, new.skipped = config, list(src.labels), split, list(src.skipped)
        new.adaptation, new.metrics = adaptation, metrics
        new.save()
        new.copy_from(src, CARRIED)
        if history:
            write_history(history, new.file(ADAPT_HISTORY))
        for name, text in extra.items():
            new.file(name).write_text(text)
        new.save_model(model)


# ------------------------------------------------------------------------------------------ helpers
class _Say:
    def __init__(self, verbose: bool):
        self.verbose = verbose

    def __call__(self, msg: str) -> None:
        if self.verbose:
            print(msg, flush=True)


def _progress(it=None, **kw):
    from tqdm import tqdm

    return tqdm(it, leave=False, disable=not sys.stderr.isatty(), **kw)


def _images_or_error(folder, size, interp, s: Settings, show: bool):
    from edgelite.adapt.images import load_unlabeled

    return load_unlabeled(folder, size, interp, minimum=MIN_IMAGES, limit=s.max_images, seed=s.seed,
                          progress=show)


def predict(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    return model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0)


def _signals(model, probs_t, train_hist, x_eval, y_eval, labels, bs) -> dict:
    from edgelite.adapt.signals import accuracy, label_free

    d: dict[str, Any] = {"label_free": label_free(probs_t, train_hist)}
    if x_eval is not None:
        d["eval"] = accuracy(predict(model, x_eval, bs), y_eval, labels)
    return d


def _describe(when: str, sig: dict) -> str:
    lf = sig["label_free"]
    text = (f"{when}: mean confidence {lf['mean_confidence']:.3f}, entropy {lf['mean_entropy']:.3f}, "
            f"{lf['effective_classes']:.1f} effective classes (histogram distance to training "
            f"{lf['histogram_distance']:.2f})")
    if "eval" in sig:
        e = sig["eval"]
        text += f"; --eval top-1 {e['top1']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}] on {e['n']} images"
    return text


def _fmt(v) -> str:
    return "?" if v is None else f"{v:.3f}"


def _settings_record(s: Settings, bs: int) -> dict:
    d: dict[str, Any] = {"batch_size": bs}
    if s.max_images is not None:
        d["max_images"] = s.max_images
    if s.method == "tent":
        d.update(steps=s.steps, lr=s.lr or 1e-3, diversity=s.diversity)
    if s.method == "pseudo":
        d.update(threshold=s.threshold, epochs=s.epochs, lr=s.lr or 1e-4)
    return d


def _overlap(a: np.ndarray, b: np.ndarray) -> int:
    """How many images of b are pixel-identical to one in a (after resizing): a leak between the two folders."""
    import hashlib

    seen = {hashlib.sha1(img.tobytes()).digest() for img in a}
    return sum(hashlib.sha1(img.tobytes()).digest() in seen for img in b)
