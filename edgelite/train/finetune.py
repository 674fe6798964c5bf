"""Fine-tuning: phase 1 trains the head on a frozen backbone, phase 2 unfreezes the top blocks.
(The example trains with TensorFlow on a photo folder: skipped as a doctest.)

    >>> from edgelite.train import train                                   # doctest: +SKIP
    >>> run = train("photos/", out="runs/flowers", image_size=160, epochs=5)  # doctest: +SKIP
    >>> run.metrics["test"]["accuracy"]                                    # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.train import data as D
from edgelite.train.config import TrainConfig, TrainOptions, load_yaml
from edgelite.train.errors import TrainError
from edgelite.train.features import ActivationCache
from edgelite.train.rundir import (
    BEST_WEIGHTS,
    CHECKPOINTS,
    CONFIG,
    CONFUSION,
    CURVES,
    LABELS,
    LAST_WEIGHTS,
    METRICS,
    MODEL,
    SKIPPED,
    SPLIT,
    RunDir,
)
from edgelite.train.tfenv import import_keras, import_tensorflow


def resolve_config(data_dir: str | None = None, out: str | None = None, config: str | None = None,
                   **overrides: Any) -> TrainConfig:
    cfg = TrainConfig()
    if config:
        cfg = cfg.update(load_yaml(config), f"--config {config}")
    cli = {k: v for k, v in overrides.items() if v is not None}
    if data_dir:
        cli["data_dir"] = str(data_dir)
    if out:
        cli["out"] = str(out)
    cfg = cfg.update(cli, "arguments")
    if not cfg.data_dir:
        raise TrainError("no data folder given: `edgelite train DATA_DIR --out runs/NAME`")
    if not cfg.out:
        raise TrainError("no output folder given: pass --out runs/NAME")
    from edgelite.train.backbones import check_weights, get_backbone

    spec = get_backbone(cfg.backbone)
    cfg.image_size = int(cfg.image_size or spec.default_size)
    cfg.weights = check_weights(cfg.weights)
    return cfg.validate()


def train(data_dir: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
          options: TrainOptions | None = None, *, verbose: int | None = None, **fields: Any) -> RunDir:
    """Fine-tune a pretrained CNN on an image folder; returns the RunDir (model, metrics, reports on disk).

    `options` is a :class:`~edgelite.train.config.TrainOptions`; keyword `fields` (the same names) replace
    its values: TrainConfig settings (backbone, image_size, epochs, fine_tune_epochs, unfreeze, batch_size,
    lr, label_smoothing, augment, class_weights, val_split, test_split, weights, seed, strategy, ...)
    and config (a YAML file), resume, overwrite. None means not given. With resume=True the run's saved
    config is used and training continues from its last checkpoint.
    """
    opts = TrainOptions.make(options, data_dir=None if data_dir is None else str(data_dir),
                             out=None if out is None else str(out), **fields)
    data_dir, out, config, resume, overwrite = opts.data_dir, opts.out, opts.config, opts.resume, opts.overwrite
    settings = opts.settings()
    out_dir = Path(out) if out else None
    if resume:
        if out_dir is None or not (out_dir / CONFIG).exists():
            raise TrainError(f"--resume: {out_dir} is not a run directory with {CONFIG}; start a new run instead")
        saved = RunDir(out_dir).settings_to_resume()  # refuses an adapted run
        # the same command again with --resume is fine; a changed setting would be silently ignored: refuse it
        changed = sorted(k.replace("_", "-") for k, v in settings.items() if v is not None
                         and k not in ("epochs", "fine_tune_epochs") and saved.get(k) != v
                         and not (k == "weights" and str(v).lower() == "none" and saved.get(k) is None))
        if data_dir and Path(data_dir).resolve() != Path(saved.get("data_dir", "")).resolve():
            changed.append("DATA_DIR")
        if changed or config:
            what = ", ".join([*(f"--{k}" if k != "DATA_DIR" else k for k in changed), *(["--config"] if config else [])])
            raise TrainError(f"--resume continues {out_dir} with its saved {CONFIG}; only --epochs and "
                             f"--fine-tune-epochs can change (drop {what}, or start a new run)")
        cfg = TrainConfig().update(saved, f"{out_dir}/{CONFIG}")
        cfg = cfg.update({k: v for k, v in settings.items() if v is not None and k in ("epochs", "fine_tune_epochs")},
                         "arguments")
        state = RunDir(out_dir).read_state()
        if state is None:
            raise TrainError(f"--resume: {out_dir} has no checkpoint yet; start again without --resume")
    else:
        cfg = resolve_config(data_dir, out, config, **settings)
        out_dir = Path(cfg.out)
        state = None

    strategy, is_chief = _strategy(cfg.strategy)
    if is_chief and not resume:
        _check_out_dir(out_dir, overwrite)  # refuse early; an old run is replaced only once data + model are good
    # a non-chief worker checkpoints into a throwaway folder of the same layout
    work = RunDir(out_dir if is_chief else Path(tempfile.mkdtemp(prefix="edgelite-worker-")))
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose

    keras = import_keras()

    keras.utils.set_random_seed(cfg.seed)

    # ---- data: decode everything once; unreadable files are skipped and listed
    size = (cfg.image_size, cfg.image_size)
    pixels = None
    if resume:
        split = RunDir(out_dir).read_split()
        classes, skipped_scan = split.classes, []
    else:
        _say(f"decoding {cfg.data_dir}")
        classes, items, skipped_scan, pixels = D.scan(cfg.data_dir, progress=verbose == 1, size=size,
                                                      interpolation=cfg.interpolation)
        split = _split(cfg, classes, items)
    xs, ys = {}, {}
    skipped = list(skipped_scan)
    for name in ("train", "val", "test"):
        subset = split.subset(name)
        if pixels is not None:  # decoded once by scan
            xs[name] = np.stack([pixels[p] for p, _ in subset]) if subset else np.zeros((0, *size, 3), np.uint8)
            ys[name] = np.asarray([y for _, y in subset], np.int32)
        else:  # --resume: decode the saved split
            xs[name], ys[name], sk = D.load_images(split.data_dir, subset, size, cfg.interpolation,
                                                  progress=verbose == 1, desc=f"loading {name}")
            skipped += sk
    del pixels
    if skipped:
        _say(f"skipped {len(skipped)} unreadable file(s), listed in {out_dir / SKIPPED}")
    n_cls = len(classes)
    _say(f"{n_cls} classes; {len(ys['train'])} train / {len(ys['val'])} val / {len(ys['test'])} test images "
         f"at {cfg.image_size}x{cfg.image_size}")

    cw = None
    if cfg.class_weights == "auto":
        counts = np.bincount(ys["train"], minlength=n_cls)
        if counts.min() > 0 and counts.max() / counts.min() > 1.2:
            cw = D.class_weights(ys["train"], n_cls)
            _say("classes are imbalanced: using balanced class weights")

    global_batch = cfg.batch_size * strategy.num_replicas_in_sync
    image_data = None  # (train, val, steps) over the images, built when a phase first trains on them

    with strategy.scope():
        model = _build(cfg, n_cls, weights=None if resume else cfg.weights)
    run = RunDir(out_dir, config=cfg, labels=list(classes), split=split, skipped=skipped)
    if is_chief and not resume:  # data and model are good: now (and only now) replace an old run
        _reset_out_dir(out_dir)
        run.save()
    ckpt_dir = work.checkpoints
    ckpt_dir.mkdir(exist_ok=True)
    history_rows: list[dict[str, Any]] = state["history"] if state else []
    start_phase, start_epoch = (state["phase"], state["epoch"]) if state else (1, 0)
    if state:
        model.load_weights(str(ckpt_dir / LAST_WEIGHTS))
        _say(f"resuming phase {start_phase} after epoch {start_epoch} from {ckpt_dir / LAST_WEIGHTS}")

    from edgelite.train.model import set_phase

    phases = [(1, cfg.epochs, cfg.lr), (2, cfg.fine_tune_epochs, cfg.fine_tune_lr)]
    t_train = time.perf_counter()
    seconds: dict[str, float] = {}
    cache = None  # built by the first phase that trains on cached activations
    for phase, epochs, lr in phases:
        if phase < start_phase or epochs == 0:
            continue
        initial = start_epoch if phase == start_phase else 0
        if initial >= epochs:
            continue
        t_phase = time.perf_counter()
        fit_model, steps = model, {}
        with strategy.scope():
            info = set_phase(model, cfg.backbone, phase, cfg.unfreeze, from_scratch=cfg.weights is None)
        # a pretrained frozen backbone: its frozen layers run once per image (and view), not every epoch
        if cfg.cached_views > 0 and cfg.weights is not None and cfg.strategy == "default":
            if cache is None:
                cache = ActivationCache.build(cfg, model, xs, ys, phase, global_batch, seconds)
            fit = cache.fit_inputs(phase, n_cls, global_batch)
            if fit is not None:
                fit_model, fit_data, fit_val = fit
        cached = fit_model is not model
        if not cached:
            if image_data is None:
                image_data = _image_datasets(cfg, xs, ys, n_cls, global_batch)
            fit_train, fit_val, steps = image_data
            fit_data = {"x": fit_train}
        with strategy.scope():
            fit_model.compile(
                optimizer=keras.optimizers.Adam(lr),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                metrics=["accuracy"],
            )
        what = ("whole network, random init" if cfg.weights is None else "head only, backbone frozen" if phase == 1
                else f"top {info['unfrozen_blocks']} of {info['blocks']} blocks unfrozen")
        _say(f"phase {phase}: {what} ({info['trainable_layers']} trainable layers), lr {lr:g}, "
             f"epochs {initial + 1}..{epochs}")
        monitor = "val_loss" if len(ys["val"]) else "loss"
        callbacks = [
            _epoch_callback(keras, model, work, phase, history_rows),
            _best_weights(keras, model, ckpt_dir / BEST_WEIGHTS, monitor) if cached else
            keras.callbacks.ModelCheckpoint(str(ckpt_dir / BEST_WEIGHTS), monitor=monitor,
                                            save_best_only=True, save_weights_only=True, verbose=0),
            keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.patience,
                                          restore_best_weights=True, verbose=1),
        ]
        fit_model.fit(**fit_data, validation_data=fit_val, epochs=epochs, initial_epoch=initial, callbacks=callbacks,
                      class_weight=cw, verbose=verbose, **steps)
        start_epoch = 0
        seconds[f"phase{phase}"] = round(time.perf_counter() - t_phase, 1)
    train_seconds = time.perf_counter() - t_train

    if cfg.strategy == "multiworker":
        # evaluate and save a plain local copy: every worker reads the synchronised weights (a
        # collective op), then predicts on its own without sharding the test set
        weights = model.get_weights()
        model = _build(cfg, n_cls, weights=None)
        model.set_weights(weights)

    # ---- evaluate on the held-out test split and write the run
    probs = model.predict(xs["test"], batch_size=max(cfg.batch_size, 128), verbose=0) if len(ys["test"]) else np.zeros((0, n_cls))
    from edgelite.train import report

    metrics = report.classification_metrics(ys["test"], probs, classes)
    metrics["train"] = _last(history_rows, "accuracy")
    metrics["val"] = _last(history_rows, "val_accuracy")
    metrics["seconds"] = {"training": round(train_seconds, 1),
                          "per_epoch": round(float(np.mean([r["seconds"] for r in history_rows])), 2)
                          if history_rows else None, **seconds}
    for ph in (1, 2):  # s/epoch per phase (phase 1 on cached features: the head's epochs only)
        rows_ph = [r["seconds"] for r in history_rows if r["phase"] == ph]
        metrics["seconds"][f"phase{ph}_per_epoch"] = round(float(np.mean(rows_ph)), 3) if rows_ph else None
    metrics["images"] = {k: int(len(v)) for k, v in ys.items()}
    metrics["skipped"] = len(skipped)
    run.metrics = metrics
    if is_chief:
        for layer in model.layers:  # the saved model is a plain float model; convert decides what trains
            layer.trainable = True
        run.save_results(model, history_rows)
    else:
        shutil.rmtree(work.path, ignore_errors=True)
    if is_chief:
        _say(_summary(run))
    return run


# ------------------------------------------------------------------------------------------ helpers
def _say(msg: str) -> None:
    print(msg, flush=True)


def _summary(run: RunDir) -> str:
    """The lines `train` prints at the end of a run."""
    m = run.metrics
    t = m["test"]
    worst = sorted(t["per_class"].items(), key=lambda kv: kv[1]["f1"])[:3]
    lines = [
        "",
        f"run         {run.path}",
        f"backbone    {run.config.backbone} @ {run.config.image_size}px, weights: {run.config.weights or 'random init'}",
        f"images      {m['images']['train']} train / {m['images']['val']} val / {m['images']['test']} test"
        + (f", {m['skipped']} skipped (see {SKIPPED})" if m["skipped"] else ""),
        f"accuracy    test {t['accuracy']:.3f}  (val {_f(m['val'])}, train {_f(m['train'])}), macro F1 {t['macro_f1']:.3f}",
        "weakest     " + ", ".join(f"{n} F1 {v['f1']:.2f}" for n, v in worst),
        f"time        {m['seconds']['training']:.0f} s training, {_f(m['seconds']['per_epoch'], '.1f')} s/epoch",
        "files       " + " ".join((MODEL, LABELS, METRICS, CURVES, CONFUSION, SPLIT)),
        f"next        edgelite convert {run.path} --out bundles/{run.path.name}",
    ]
    return "\n".join(lines)


def _f(v, fmt=".3f"):
    return "n/a" if v is None else format(v, fmt)


def _last(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(vals[-1]) if vals else None


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    run = RunDir(out_dir)
    if not run.holds_files():
        return
    if not (run.file(CONFIG).is_file() or run.file(CHECKPOINTS).is_dir()):
        # --overwrite empties the folder: only ever a run's (never photos or anything else a user keeps there)
        raise TrainError(f"--out {out_dir} holds files that are not a run; choose a new or empty folder "
                         "(--overwrite replaces only a run)")
    if not overwrite:
        raise TrainError(f"{out_dir} already holds a run; pass --resume to continue it, --overwrite to replace "
                         "it, or choose another --out")


def _reset_out_dir(out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def _strategy(name: str):
    """(tf.distribute strategy, is_chief)."""
    tf = import_tensorflow()

    if name == "mirrored":
        return tf.distribute.MirroredStrategy(), True
    if name == "multiworker":
        tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
        if not tf_config.get("cluster"):
            raise TrainError("--strategy multiworker needs TF_CONFIG with the cluster and this worker's task; "
                             "see https://www.tensorflow.org/guide/distributed_training#TF_CONFIG")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = tf_config.get("task", {})
        has_chief = "chief" in tf_config["cluster"]
        is_chief = task.get("type") == "chief" or (not has_chief and task.get("type") == "worker"
                                                     and int(task.get("index", 0)) == 0)
        return strategy, is_chief
    return tf.distribute.get_strategy(), True


def _split(cfg: TrainConfig, classes: list[str], items: list[tuple[str, int]]) -> D.Split:
    """The stratified split; when DATA_DIR/heldout.txt lists images (`edgelite data --test-per-class`),
    exactly those readable ones are the test split and the rest is split into train and val."""
    from edgelite.train.demo_data import HELDOUT_LIST, read_heldout_list

    root = str(Path(cfg.data_dir).resolve())
    pinned = read_heldout_list(cfg.data_dir)
    if pinned is None:
        return D.stratified_split(items, classes, val_split=cfg.val_split, test_split=cfg.test_split,
                                  seed=cfg.seed, data_dir=root)
    listed = set(pinned)
    test = [(p, y) for p, y in items if p in listed]
    if not test:
        raise TrainError(f"{Path(cfg.data_dir) / HELDOUT_LIST} lists no readable image of the folder; "
                         "fix or delete it (without it, --test-split decides the test split)")
    split = D.stratified_split([(p, y) for p, y in items if p not in listed], classes, val_split=cfg.val_split,
                               test_split=0.0, seed=cfg.seed, data_dir=root, min_per_class=2)
    split.test = test
    _say(f"test split: the {len(test)} images listed in {HELDOUT_LIST}")
    return split


def _build(cfg: TrainConfig, n_cls: int, weights):
    from edgelite.train.model import build_classifier

    return build_classifier(cfg.backbone, n_cls, cfg.image_size, weights=weights, dropout=cfg.dropout)


def _image_datasets(cfg: TrainConfig, xs, ys, n_cls: int, global_batch: int):
    """(train, val, fit step arguments) over the decoded images."""
    train_ds = _dataset(xs["train"], ys["train"], n_cls, global_batch, shuffle=True, augment=cfg.augment,
                        seed=cfg.seed)
    val_ds = _dataset(xs["val"], ys["val"], n_cls, global_batch) if len(ys["val"]) else None
    steps = {}
    if cfg.strategy == "multiworker":
        # every worker must run the same number of steps, or the collectives deadlock/mismatch:
        # repeat the data and fix the step counts instead of letting a ragged last batch decide
        train_ds = train_ds.repeat()
        steps["steps_per_epoch"] = max(1, len(ys["train"]) // global_batch)
        if val_ds is not None:
            val_ds = val_ds.repeat()
            steps["validation_steps"] = max(1, -(-len(ys["val"]) // global_batch))
    return train_ds, val_ds, steps


def _dataset(x: np.ndarray, y: np.ndarray, n_cls: int, batch: int, *, shuffle: bool = False, augment: bool = False,
             seed: int = 0):
    """tf.data over decoded uint8 images; augmentation happens here, never inside the model."""
    tf = import_tensorflow()

    ds = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(y, n_cls)))
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    if augment:
        from edgelite.train.features import augment as aug_one

        h, w = x.shape[1:3]

        def aug(img, label):
            return aug_one(img, label, h, w)

        ds = ds.map(aug, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda img, label: (tf.cast(img, tf.float32), label))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE).with_options(options)


def _best_weights(keras, model, path: Path, monitor: str):
    """Save the whole classifier's weights whenever `monitor` improves (ModelCheckpoint would save the
    model being fitted, which on cached features is the head alone)."""
    best = {"v": float("inf")}

    def end(epoch, logs=None):
        v = (logs or {}).get(monitor)
        if v is not None and v < best["v"]:
            best["v"] = v
            model.save_weights(str(path))

    return keras.callbacks.LambdaCallback(on_epoch_end=end)


def _epoch_callback(keras, model, work: RunDir, phase: int, rows: list[dict[str, Any]]):
    """After every epoch: a history row (phase, epoch, metrics, seconds), then the weights + state that
    --resume continues from. Every worker saves (reading synchronised variables is itself a collective
    op); a non-chief worker's `work` is a throwaway temp dir. Built here, not as a module-level
    class, so importing this module does not import TensorFlow."""
    started = {}

    def begin(epoch, logs=None):
        started["t"] = time.perf_counter()

    def end(epoch, logs=None):
        row = {"phase": phase, "epoch": epoch + 1, "seconds": round(time.perf_counter() - started["t"], 2)}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        rows.append(row)
        work.save_checkpoint(model, {"phase": phase, "epoch": epoch + 1, "history": rows})

    return keras.callbacks.LambdaCallback(on_epoch_begin=begin, on_epoch_end=end)
