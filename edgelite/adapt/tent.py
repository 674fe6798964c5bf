"""`tent`: entropy minimisation on the unlabeled images, updating only BatchNorm scale and offset
(after Wang et al., "Tent: Fully Test-Time Adaptation by Entropy Minimization", ICLR 2021).

Tent normalises with the target batch's own statistics; a model exported for the device needs
fixed statistics, so tent starts from the `bn` result (the target's statistics, matched layer by
layer — see batchnorm.py) and then takes `steps` Adam steps on gamma and beta only, BatchNorm in
inference mode. Plain entropy minimisation can push every image onto one class; the loss
therefore also maximises the entropy of the *mean* prediction over a batch (`diversity`, the
information-maximisation term of SHOT, Liang et al. 2020). diversity=0 is the paper's loss.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def adapt_tent(model, layers: list, images: np.ndarray, *, steps: int = 40, lr: float = 1e-3,
               batch_size: int = 32, diversity: float = 1.0, seed: int = 0,
               progress: Callable | None = None) -> tuple[dict, list[dict]]:
    """Update gamma/beta of `layers` in place. Returns (summary, history rows)."""
    import tensorflow as tf
    import tf_keras as keras

    params = [v for layer in layers for v in (layer.gamma, layer.beta) if v is not None]
    if not params:
        from edgelite.adapt.errors import AdaptError

        raise AdaptError("the model's BatchNorm layers have neither scale nor offset; --method tent has nothing to "
                         "train — use --method bn or pseudo")
    opt = keras.optimizers.Adam(lr)
    n_classes = int(model.outputs[0].shape[-1])
    log_k = float(np.log(n_classes))

    @tf.function(reduce_retracing=True)
    def step(x):
        with tf.GradientTape() as tape:
            p = tf.clip_by_value(model(x, training=False), 1e-8, 1.0)
            ent = -tf.reduce_mean(tf.reduce_sum(p * tf.math.log(p), axis=-1))
            pm = tf.reduce_mean(p, axis=0)
            div = -tf.reduce_sum(pm * tf.math.log(pm))
            loss = ent - diversity * div
        grads = tape.gradient(loss, params)
        opt.apply_gradients(zip(grads, params, strict=True))
        return ent, div

    rng = np.random.default_rng(seed)
    bs = min(batch_size, len(images))
    rows = []
    it = range(steps)
    if progress is not None:
        it = progress(it, desc="tent: entropy steps", unit="step")
    order = rng.permutation(len(images))
    pos = 0
    for s in it:
        if pos + bs > len(order):
            order, pos = rng.permutation(len(images)), 0
        xb = images[order[pos : pos + bs]].astype(np.float32)
        pos += bs
        ent, div = step(tf.constant(xb))
        rows.append({"step": s + 1, "entropy": round(float(ent) / log_k, 4), "mean_prediction_entropy":
                     round(float(div) / log_k, 4)})
    return ({"steps": steps, "lr": lr, "batch_size": bs, "diversity": diversity, "parameters":
             int(sum(int(np.prod(v.shape)) for v in params)),
             "entropy_first": rows[0]["entropy"] if rows else None,
             "entropy_last": rows[-1]["entropy"] if rows else None}, rows)
