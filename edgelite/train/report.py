"""Run reports: metrics (accuracy, per-class precision/recall/F1, confusion), the history CSV, PNG plots.

Where each report goes in the run directory is `edgelite.train.rundir`'s business; these functions take paths.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """{"test": {accuracy, per_class: {name: {precision, recall, f1, support}}, confusion_matrix, ...}}."""
    k = len(classes)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(probs).argmax(axis=-1) if len(y_true) else np.zeros((0,), np.int64)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class = {}
    for i, name in enumerate(classes):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i, :].sum() if cm[i, :].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[name] = {"precision": round(float(prec), 4), "recall": round(float(rec), 4),
                           "f1": round(float(f1), 4), "support": int(cm[i, :].sum())}
    acc = float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0
    top5 = None
    if len(y_true) and k > 5:
        top = np.argsort(-probs, axis=-1)[:, :5]
        top5 = float(np.mean([t in row for t, row in zip(y_true, top, strict=True)]))
    return {"test": {"accuracy": round(acc, 4), "top5": top5, "n": int(cm.sum()),
                     "macro_f1": round(float(np.mean([v["f1"] for v in per_class.values()])), 4),
                     "per_class": per_class, "confusion_matrix": cm.tolist()}}


def write_history(rows: list[dict[str, Any]], path: str | Path) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Loss and accuracy per epoch for train and val; a dashed line where phase 2 starts."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(1, len(rows) + 1)
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            ys = [r.get(prefix + key, np.nan) for r in rows]
            if not np.all(np.isnan(ys)):
                ax.plot(x, ys, style, label=(prefix or "train_").rstrip("_"), markersize=4)
        p2 = [i + 1 for i, r in enumerate(rows) if r["phase"] == 2]
        if p2:
            ax.axvline(p2[0] - 0.5, color="gray", linestyle="--", linewidth=1)
            ax.text(p2[0] - 0.4, ax.get_ylim()[1], " fine-tune", va="top", fontsize=8, color="gray")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: str | Path) -> None:
    plt = _plt()
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title("test confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
