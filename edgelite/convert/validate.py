"""One validator for every format: the device's own loader and preprocessing, the held-out split.

Each file is loaded with :func:`edgelite.device.runtime.load_model` (LiteRT / onnxruntime, exactly
what `edgelite run` uses), each held-out image goes through
:func:`edgelite.device.preprocess.prepare_rgb`, and the scores come from ``model.classify``. The
float Keras model's scores on the same pixels are the reference.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def metrics_from_scores(scores: np.ndarray, labels: np.ndarray, names: list[str],
                        reference: np.ndarray | None = None) -> dict[str, Any]:
    """top-1, per-class accuracy (None for a class without held-out images), agreement and the
    largest probability difference with `reference` scores, and how often each class is predicted."""
    pred = scores.argmax(axis=1)
    out: dict[str, Any] = {"images": int(len(labels)), "top1": float((pred == labels).mean()) if len(labels) else None}
    per_class = {}
    for i, name in enumerate(names):
        mask = labels == i
        per_class[name] = float((pred[mask] == i).mean()) if mask.any() else None
    out["per_class"] = per_class
    out["predicted"] = {name: int((pred == i).sum()) for i, name in enumerate(names)}
    if reference is not None:
        out["agreement"] = float((pred == reference.argmax(axis=1)).mean()) if len(labels) else None
        out["max_prob_diff"] = float(np.abs(scores - reference).max()) if len(labels) else None
    return out


def keras_scores(model, images: np.ndarray, spec, batch_size: int = 32) -> np.ndarray:
    """The float Keras model's probabilities on the device-prepared pixels (the reference)."""
    from edgelite.device.preprocess import prepare_rgb

    x = np.stack([prepare_rgb(img, spec) for img in images]).astype(np.float32) if len(images) else images
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float32)


def run_file(path, fmt: str, images: np.ndarray, spec, num_threads: int | None = None):
    """(scores N x C float32, ms per image, runtime name) of a model file over `images`, the device's way."""
    from edgelite.device.preprocess import prepare_rgb
    from edgelite.device.runtime import load_model

    model = load_model(path, fmt=fmt, num_threads=num_threads)
    if (model.input_height, model.input_width) != (spec.height, spec.width):
        raise ValueError(f"{path} takes {model.input_height}x{model.input_width}, the manifest says "
                         f"{spec.height}x{spec.width}")
    buf = np.empty((spec.height, spec.width, 3), np.uint8)
    scores = np.empty((len(images), model.num_classes), np.float32)
    t = time.perf_counter()
    for i, img in enumerate(images):
        scores[i] = model.classify(prepare_rgb(img, spec, out=buf))
    ms = (time.perf_counter() - t) * 1000 / max(1, len(images))
    return scores, ms, getattr(model, "runtime", "?")


def validate_file(path, fmt: str, images: np.ndarray, labels: np.ndarray, names: list[str], spec,
                  reference: np.ndarray, reference_top1: float | None) -> dict[str, Any]:
    scores, ms, runtime = run_file(path, fmt, images, spec)
    if scores.shape[1] != len(names):
        raise ValueError(f"{path} outputs {scores.shape[1]} classes, the bundle has {len(names)} labels")
    m = scored_metrics(scores, labels, names, reference, reference_top1)
    m["ms_per_image"] = round(ms, 3)
    m["runtime"] = str(runtime)
    return m


def scored_metrics(scores: np.ndarray, labels: np.ndarray, names: list[str], reference: np.ndarray,
                   reference_top1: float | None) -> dict[str, Any]:
    """`metrics_from_scores` plus Δ top-1 in points against the float model and its paired interval."""
    m = metrics_from_scores(scores, labels, names, reference)
    m["delta"] = (m["top1"] - reference_top1) * 100 if (m["top1"] is not None and reference_top1 is not None) else None
    if m["delta"] is not None and len(labels):
        m.update(delta_interval(scores.argmax(axis=1) == labels, reference.argmax(axis=1) == labels))
    return m


def delta_interval(correct: np.ndarray, reference_correct: np.ndarray) -> dict[str, Any]:
    """The manifest's paired 95 % interval of Δ top-1 against the float model on the same images:
    {"delta_ci": [lo, hi] points, "delta_p": McNemar p, "delta_distinguishable": bool}."""
    from edgelite.stats import paired_delta

    r = paired_delta(correct, reference_correct)
    return {"delta_ci": [round(v, 3) for v in r["ci"]], "delta_p": round(r["p"], 6),
            "delta_distinguishable": r["distinguishable"]}


def collapsed_classes(metrics: dict[str, Any], reference: dict[str, Any], max_drop: float) -> list[tuple[str, float, float]]:
    """Classes whose held-out accuracy fell by more than `max_drop` points: [(name, float acc, format acc)],
    worst first."""
    out = []
    for name, acc in metrics.get("per_class", {}).items():
        ref = reference.get("per_class", {}).get(name)
        if acc is None or ref is None:
            continue
        if (ref - acc) * 100 > max_drop:
            out.append((name, ref, acc))
    return sorted(out, key=lambda t: t[2] - t[1])
