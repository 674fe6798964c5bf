"""`edgelite review --retrain`: fine-tune a run from its own weights on the frames labelled in the review
(DATA_DIR/review.csv) plus a sample of its old training photos, and write a new run.

The labelled frames are split per class, seeded: HELDOUT of them are never trained on and score the
source and the new model (top-1 per class with 95 % Wilson intervals, and the paired difference with
its interval, edgelite.stats). The run's own test split is scored too: what the new frames cost the old
domain. The schedule is short (the head and the top block, BatchNorm frozen, as `adapt --method pseudo`).

    >>> from edgelite.review.retrain import retrain                                  # doctest: +SKIP
    >>> r = retrain("runs/demo", "photos/", "runs/demo-reviewed")                     # doctest: +SKIP
    >>> r["heldout"]["before"]["top1"], r["heldout"]["after"]["top1"]                 # doctest: +SKIP
"""

from __future__ import annotations

import csv
import datetime as _dt
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.review.errors import ReviewError
from edgelite.review.store import PROVENANCE

HELDOUT = 0.3  # of each class's labelled frames, kept out of training and scored before/after
OLD_PER_NEW = 2  # old training photos sampled per new training frame (so the old domain is not forgotten)
HELDOUT_LIST = "review_heldout.csv"  # in the new run: the labelled frames it was scored on, never trained on


def labelled_frames(data_dir: Path, labels: list[str]) -> list[tuple[str, int]]:
    """(path relative to DATA_DIR, class index) of every frame the review labelled and that is still there."""
    csv_path = data_dir / PROVENANCE
    if not csv_path.is_file():
        raise ReviewError(f"{csv_path} does not exist: label frames first with `edgelite review FRAMES_DIR --data "
                          f"{data_dir}`")
    out, seen = [], set()
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rel = row.get("file") or ""
            if row.get("action") != "label" or rel in seen or not (data_dir / rel).is_file():
                continue
            if row.get("label") not in labels:
                raise ReviewError(f"{csv_path}: class {row.get('label')!r} is not one of the run's classes; a new "
                                  "class needs a new head: train from scratch with `edgelite train`")
            seen.add(rel)
            out.append((rel, labels.index(row["label"])))
    return out


def split_new(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices), per class: round(fraction * n) held out, at least 1 of a class with 2+.

    >>> tr, ho = split_new(np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2]), 0.3, 0)
    >>> len(tr), len(ho), sorted(np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2])[ho].tolist())
    (8, 3, [0, 1, 1])
    """
    rng = np.random.default_rng(seed)
    train, held = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = 0 if len(idx) < 2 else max(1, int(round(fraction * len(idx))))
        held += idx[:k].tolist()
        train += idx[k:].tolist()
    return np.asarray(sorted(train), np.int64), np.asarray(sorted(held), np.int64)


def retrain(run: str | os.PathLike, data_dir: str | os.PathLike, out: str | os.PathLike, *, epochs: int = 5,
            lr: float = 1e-4, seed: int = 0, overwrite: bool = False, say=print) -> dict[str, Any]:
    """Fine-tune `run` on the frames labelled into `data_dir` (+ old photos); write the new run at `out`.
    Returns the record written into its metrics.json under ``adaptation`` (method "review")."""
    from edgelite.adapt.core import check_out, open_source, predict, split_images, write_run
    from edgelite.adapt.images import decode_files
    from edgelite.adapt.pseudo import fine_tune, trainable_for_pseudo
    from edgelite.adapt.signals import accuracy
    from edgelite.stats import paired_delta
    from edgelite.train import report

    t0 = time.perf_counter()
    data_dir = Path(data_dir)
    src = open_source(run)
    out = check_out(out, src, overwrite)
    size, interp, bs = src.config.image_size, src.config.interpolation, src.config.batch_size
    items = labelled_frames(data_dir, src.labels)
    if len(items) < 4:
        raise ReviewError(f"only {len(items)} labelled frame(s) in {data_dir / PROVENANCE}; label at least a few "
                          "per class (tens are better) before retraining")
    x_new, rels, skipped = decode_files(data_dir, [data_dir / r for r, _ in items], size, interp)
    keep = set(rels)
    y_new = np.asarray([c for r, c in items if str(Path(r)) in keep], np.int64)
    tr, ho = split_new(y_new, HELDOUT, seed)
    n_old = min(len(src.split.train), OLD_PER_NEW * max(1, len(tr)))
    x_old, y_old = split_images(src, "train", data_dir if (data_dir / src.split.train[0][0]).exists() else None,
                                 limit=n_old, seed=seed)
    say(f"retraining {src.path} on {len(tr)} labelled frames + {len(y_old)} of its training photos; "
        f"{len(ho)} labelled frames held out" + (f" ({len(skipped)} unreadable left out)" if skipped else ""))

    model = src.load_model()
    before = accuracy(predict(model, x_new[ho], bs), y_new[ho], src.labels) if len(ho) else None
    if not trainable_for_pseudo(model, src.config.backbone):
        raise ReviewError(f"{src.path}: no Dense head to fine-tune in this model")
    history = fine_tune(model, np.concatenate([x_new[tr], x_old]), np.concatenate([y_new[tr], y_old]),
                        len(src.labels), epochs=epochs, lr=lr, batch_size=bs, seed=seed)
    record: dict[str, Any] = {"method": "review", "source_run": str(src.path.resolve()),
                              "labelled": str((data_dir / PROVENANCE).resolve()), "frames_train": int(len(tr)),
                              "frames_heldout": int(len(ho)), "old_photos": int(len(y_old)), "epochs": epochs,
                              "lr": lr, "seed": seed}
    if len(ho):
        p_before = src.load_model()
        hit0 = predict(p_before, x_new[ho], bs).argmax(1) == y_new[ho]
        probs = predict(model, x_new[ho], bs)
        after = accuracy(probs, y_new[ho], src.labels)
        record["heldout"] = {"before": before, "after": after,
                             "delta": paired_delta(probs.argmax(1) == y_new[ho], hit0)}
    x_test, y_test = split_images(src, "test", None if (Path(src.split.data_dir)).exists() else data_dir)
    metrics = report.classification_metrics(y_test, predict(model, x_test, bs), src.labels)
    record["clean_test"] = {"before": (src.metrics.get("test") or {}).get("accuracy"),
                            "after": metrics["test"]["accuracy"], "n": int(len(y_test))}
    record["wall_seconds"] = round(time.perf_counter() - t0, 1)
    record["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    metrics["adaptation"] = record
    held_csv = "path,label\n" + "".join(f'"{rels[i]}",{src.labels[y_new[i]]}\n' for i in ho)
    write_run(src, out, model, data=None, metrics=metrics, history=history, extra={HELDOUT_LIST: held_csv},
              adaptation={k: record[k] for k in ("method", "source_run", "labelled", "frames_train",
                                                 "frames_heldout", "old_photos", "epochs", "lr", "seed")})
    say(describe(record, out))
    return record


def describe(r: dict, out) -> str:
    """The summary lines `--retrain` prints."""
    lines = []
    if "heldout" in r:
        b, a, d = r["heldout"]["before"], r["heldout"]["after"], r["heldout"]["delta"]
        from edgelite.stats import format_delta

        lines.append(f"held-out labelled frames ({a['n']}): top-1 {b['top1']:.3f} [{b['ci95'][0]:.3f}, "
                     f"{b['ci95'][1]:.3f}] -> {a['top1']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}], "
                     f"{format_delta(d['delta'], d['ci'])} points")
        for label, pa in a["per_class"].items():
            pb = b["per_class"][label]
            lines.append(f"  {label:>14}: {pb['top1']:.2f} -> {pa['top1']:.2f} [{pa['ci95'][0]:.2f}, "
                         f"{pa['ci95'][1]:.2f}] (n={pa['n']})")
    c = r["clean_test"]
    before = "?" if c["before"] is None else f"{c['before']:.3f}"
    lines.append(f"the run's own test split ({c['n']}): top-1 {before} -> {c['after']:.3f}")
    lines.append(f"new run written to {out} in {r['wall_seconds']:.0f} s; next: edgelite convert {out} "
                 f"--out bundles/{Path(out).name}")
    return "\n".join(lines)
