"""`pseudo`: confident predictions become labels for a short fine-tune of the head and the top block.

Starts from the `bn` result when the model has BatchNorm (better pseudo-labels). Predictions at or
above `threshold` are kept; each class keeps at most as many as the median class (the most
confident first), so one dominant class cannot take over the fine-tune. BatchNorm stays frozen, as
in `edgelite train`'s phase 2; images are flipped at random while training. Every image's
prediction, confidence and whether it was used are returned for pseudo_labels.csv.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from edgelite.adapt.errors import AdaptError

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

MIN_PSEUDO = 8  # fewer confident images than this teach the model nothing reliable


def select(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the images used: confident, and balanced (at most the median class's count per class).

    >>> p = np.array([[0.95, 0.05], [0.97, 0.03], [0.99, 0.01], [0.1, 0.9], [0.6, 0.4]])
    >>> sorted(select(p, 0.8).tolist())  # class 0 has 3 confident, class 1 has 1: median cap 2
    [1, 2, 3]
    """
    conf, pred = probs.max(1), probs.argmax(1)
    ok = np.flatnonzero(conf >= threshold)
    counts = np.bincount(pred[ok], minlength=probs.shape[1])
    present = counts[counts > 0]
    if not len(present):
        return ok
    cap = max(1, int(np.ceil(np.median(present))))
    keep = []
    for c in np.flatnonzero(counts):
        idx = ok[pred[ok] == c]
        keep += idx[np.argsort(-conf[idx], kind="stable")][:cap].tolist()
    return np.asarray(sorted(keep), np.int64)


def trainable_for_pseudo(model, backbone: str | None) -> int:
    """Head + top block trainable (BatchNorm frozen); only the last Dense layer for an unknown backbone."""
    import tf_keras as keras

    from edgelite.train.backbones import BACKBONES

    if backbone in BACKBONES:
        from edgelite.train.model import set_phase

        return set_phase(model, backbone, 2, unfreeze=1)["trainable_layers"]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for layer in model.layers:
        layer.trainable = bool(dense) and layer is dense[-1]
    return 1 if dense else 0


def adapt_pseudo(model, images: np.ndarray, backbone: str | None, *, threshold: float = 0.8, epochs: int = 5,
                 lr: float = 1e-4, batch_size: int = 32, seed: int = 0, label_smoothing: float = 0.1,
                 progress: Callable | None = None) -> tuple[dict, list[dict], np.ndarray, np.ndarray]:
    """Fine-tune in place on confident pseudo-labels. Returns (summary, history rows, probs before, used indices)."""
    probs = model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    used = select(probs, threshold)
    if len(used) < MIN_PSEUDO:
        raise AdaptError(f"--method pseudo: only {len(used)} of {len(images)} images are predicted with confidence "
                         f">= {threshold}; lower --threshold (e.g. 0.6) or add more images")
    n_cls = probs.shape[1]
    y = probs.argmax(1)[used]
    trainable = trainable_for_pseudo(model, backbone)
    if not trainable:
        raise AdaptError("--method pseudo found no Dense head to fine-tune in this model")
    rows = fine_tune(model, images[used], y, n_cls, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                     label_smoothing=label_smoothing)
    counts = np.bincount(y, minlength=n_cls)
    summary = {"threshold": threshold, "epochs": epochs, "lr": lr, "label_smoothing": label_smoothing,
               "confident": int((probs.max(1) >= threshold).sum()), "used": int(len(used)),
               "per_class": counts.tolist(), "trainable_layers": int(trainable)}
    return summary, rows, probs, used


def fine_tune(model, images: np.ndarray, y: np.ndarray, n_cls: int, *, epochs: int, lr: float, batch_size: int,
              seed: int = 0, label_smoothing: float = 0.1, weights: np.ndarray | None = None) -> list[dict]:
    """Train the model's trainable layers in place on (uint8 images, int labels), images flipped at random;
    `weights`: one per image (None: all 1). Returns one history row per epoch. `edgelite review --retrain`
    fine-tunes with it too."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing), metrics=["accuracy"])
    w = np.ones(len(y), np.float32) if weights is None else np.asarray(weights, np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, tf.one_hot(y, n_cls), w)).shuffle(len(y), seed=seed)
    ds = ds.map(lambda img, lab, wt: (tf.image.random_flip_left_right(tf.cast(img, tf.float32)), lab, wt))
    ds = ds.batch(batch_size)
    rows: list[dict] = []

    class _Rows(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rows.append({"epoch": epoch + 1, **{k: round(float(v), 4) for k, v in (logs or {}).items()}})

    model.fit(ds, epochs=epochs, verbose=0, callbacks=[_Rows()])
    return rows


def pseudo_labels_csv(rels: list[str], probs: np.ndarray, used: np.ndarray, labels: list[str]) -> str:
    used_set = set(used.tolist())
    lines = ["path,prediction,confidence,used"]
    for i, rel in enumerate(rels):
        p = probs[i]
        name = rel.replace('"', '""')
        lines.append(f'"{name}",{labels[int(p.argmax())]},{float(p.max()):.4f},{"yes" if i in used_set else "no"}')
    return "\n".join(lines) + "\n"
