"""What adaptation did: top-1 with 95 % intervals on a labelled target folder, or label-free signals.

Label-free signals (no labels needed): mean confidence (top probability), mean entropy (as a
fraction of log K), the predicted-class histogram against the training split's class histogram
(total variation distance), and the effective number of predicted classes exp(H(histogram)). A
collapse warning fires when adaptation leaves far fewer effective classes than training had.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n.

    >>> [round(v, 3) for v in wilson(45, 50)]
    [0.786, 0.957]
    """
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (0.0 if k == 0 else max(0.0, c - h), 1.0 if k == n else min(1.0, c + h))


def accuracy(probs: np.ndarray, y: np.ndarray, labels: list[str]) -> dict:
    """{"top1", "ci95", "n", "per_class": {label: {top1, ci95, n}}} for the classes present in y."""
    pred = probs.argmax(1)
    hit = pred == y
    out = {"top1": round(float(hit.mean()), 4), "ci95": [round(v, 4) for v in wilson(int(hit.sum()), len(y))],
           "n": int(len(y)), "per_class": {}}
    for c in np.unique(y):
        m = y == c
        k, n = int(hit[m].sum()), int(m.sum())
        out["per_class"][labels[int(c)]] = {"top1": round(k / n, 4), "ci95": [round(v, 4) for v in wilson(k, n)],
                                            "n": n}
    return out


def effective_classes(hist: np.ndarray) -> float:
    p = hist / max(hist.sum(), 1e-12)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum())) if len(p) else 0.0


def label_free(probs: np.ndarray, train_hist: np.ndarray) -> dict:
    k = probs.shape[1]
    p = np.clip(probs, 1e-12, 1.0)
    ent = -(p * np.log(p)).sum(1) / math.log(k)
    hist = np.bincount(probs.argmax(1), minlength=k).astype(np.float64)
    share, train_share = hist / hist.sum(), train_hist / train_hist.sum()
    return {"mean_confidence": round(float(probs.max(1).mean()), 4), "mean_entropy": round(float(ent.mean()), 4),
            "predicted_histogram": [int(v) for v in hist],
            "histogram_distance": round(float(0.5 * np.abs(share - train_share).sum()), 4),
            "effective_classes": round(effective_classes(hist), 2),
            "largest_class_share": round(float(share.max()), 4)}


def collapse_warning(after: dict, before: dict, train_hist: np.ndarray, labels: list[str]) -> str | None:
    """A one-line warning when predictions pile onto few classes (None when they do not)."""
    train_eff = effective_classes(train_hist)
    eff = after["effective_classes"]
    if eff < 0.5 * train_eff or (eff < 0.7 * before["effective_classes"] and eff < 0.8 * train_eff):
        top = int(np.argmax(after["predicted_histogram"]))
        return (f"predictions collapsed onto few classes: {eff:.1f} effective classes after adaptation "
                f"(training has {train_eff:.1f}, before adaptation {before['effective_classes']:.1f}); "
                f"{after['largest_class_share']:.0%} are '{labels[top]}'. Check with --eval DIR, collect frames "
                "of every class, or try --method bn")
    return None
