"""`bn`: BatchNorm statistics matching, layer by layer, in graph order (after AdaBN, Li et al. 2016).

Why not plain AdaBN: `edgelite train` keeps BatchNorm frozen at the backbone's ImageNet statistics,
so the head learned on features normalised with *those*, not with the training images' own
statistics. Replacing each layer's moving statistics by the target images' statistics therefore
moves every feature — it collapsed a fine-tuned Lite0 to chance here, even with clean images as the
"target". Instead, for each BatchNorm layer in order we choose new moving statistics so the target
images' features leave the layer distributed (per channel mean and spread) exactly as the training
images' features did through the original layer:

    training input  ~ (m_s, v_s), original layer (mu, var):  out = (x - mu) / sqrt(var + eps)
    target input    ~ (m_t, v_t), with every earlier layer already adapted
    r    = sqrt((v_t + eps) / (v_s + eps))
    var' = (var + eps) * r^2 - eps,   mu' = m_t - (m_s - mu) * r

With target == training images this is the identity (r = 1, mu' = mu), which plain AdaBN is not.
Only moving_mean / moving_variance change; every weight, gamma and beta stays as trained.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from edgelite.adapt.errors import AdaptError

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def batchnorm_layers(model) -> list:
    """The model's BatchNormalization layers in graph order (channels-last only)."""
    import tf_keras as keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        rank = len(layer.input_shape)
        if [a % rank for a in axis] != [rank - 1]:
            raise AdaptError(f"BatchNorm layer {layer.name} normalises axis {layer.axis}, not the channels-last "
                             "axis; adapt supports channels-last models only")
    return layers


def require_batchnorm(model, method: str, run) -> list:
    layers = batchnorm_layers(model)
    if not layers:
        raise AdaptError(f"{run} has no BatchNorm layers, so --method {method} has nothing to adapt "
                         "(it changes only BatchNorm); use --method pseudo, or a backbone with BatchNorm")
    return layers


class Probe:
    """Per-channel (mean, variance) of every BatchNorm layer's input, over a set of images, batched."""

    def __init__(self, model, layers: list, batch_size: int = 32):
        import tensorflow as tf
        import tf_keras as keras

        self.layers = layers
        self.batch_size = batch_size
        self._probe = keras.Model(model.inputs, [layer.input for layer in layers])

        @tf.function(reduce_retracing=True)
        def moments(x):
            outs = self._probe(x, training=False)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            res = []
            for o in outs:
                axes = list(range(len(o.shape) - 1))
                m, v = tf.nn.moments(tf.cast(o, tf.float32), axes=axes)
                res.append((m, v))
            return res

        self._moments = moments

    def __call__(self, images: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(mean, var) per layer] in float64, batches combined exactly (parallel variance formula)."""
        n_total = 0
        acc: list[list[np.ndarray]] | None = None
        for start in range(0, len(images), self.batch_size):
            xb = images[start : start + self.batch_size].astype(np.float32)
            n = len(xb)
            res = [(m.numpy().astype(np.float64), v.numpy().astype(np.float64)) for m, v in self._moments(xb)]
            if acc is None:
                acc = [[m * n, (v + m * m) * n] for m, v in res]
            else:
                for a, (m, v) in zip(acc, res, strict=True):
                    a[0] += m * n
                    a[1] += (v + m * m) * n
            n_total += n
        assert acc is not None  # images is never empty here (checked by the caller)
        out = []
        for s1, s2 in acc:
            mean = s1 / n_total
            out.append((mean, np.maximum(s2 / n_total - mean * mean, 0.0)))
        return out


def matched_statistics(mu, var, eps, m_s, v_s, m_t, v_t) -> tuple[np.ndarray, np.ndarray]:
    """New (moving_mean, moving_variance) so target inputs (m_t, v_t) come out as training inputs (m_s, v_s) did.

    >>> mu, var = matched_statistics(np.zeros(1), np.ones(1), 1e-3, np.ones(1), np.ones(1), np.ones(1), np.ones(1))
    >>> round(float(mu[0]), 9), round(float(var[0]), 9)  # target == training: unchanged
    (0.0, 1.0)
    """
    r = np.sqrt((v_t + eps) / (v_s + eps))
    new_var = np.maximum((var + eps) * r * r - eps, 0.0)
    new_mu = m_t - (m_s - mu) * r
    return new_mu, new_var


def adapt_batchnorm(model, layers: list, source_images: np.ndarray, target_images: np.ndarray, *,
                    batch_size: int = 32, progress: Callable | None = None) -> dict:
    """Match every BatchNorm layer's statistics in order (in place). Returns a summary for the run's record.

    The training statistics come from one batched pass of the original model. The target side is ONE
    eager forward pass of all target images as a single batch: each BatchNorm layer, when reached,
    measures its input (every earlier layer is already adapted, by construction of the pass), sets
    its new statistics and normalises with them. That is the layer-by-layer algorithm at the cost of
    one forward pass instead of one per layer.
    """
    import tensorflow as tf

    source = Probe(model, layers, batch_size)(source_images)  # once, with the original model
    shifts: list[float] = []
    bar = progress(total=len(layers), desc="bn: matching statistics", unit="layer") if progress else None

    def matching_call(layer, i):
        original = type(layer).call

        def call(inputs, training=None, **kw):
            x = tf.cast(inputs, tf.float32)
            m_t, v_t = tf.nn.moments(x, axes=list(range(len(x.shape) - 1)))
            m_s, v_s = source[i]
            eps = float(layer.epsilon)
            new_mu, new_var = matched_statistics(layer.moving_mean.numpy().astype(np.float64),
                                                 layer.moving_variance.numpy().astype(np.float64), eps, m_s, v_s,
                                                 m_t.numpy().astype(np.float64), v_t.numpy().astype(np.float64))
            layer.moving_mean.assign(new_mu.astype(np.float32))
            layer.moving_variance.assign(new_var.astype(np.float32))
            # how far the target's inputs sat from the training ones, in training standard deviations
            shifts.append(float(np.mean(np.abs(m_t.numpy() - m_s) / np.sqrt(v_s + eps))))
            if bar is not None:
                bar.update(1)
            return original(layer, inputs, training=False)

        return call

    for i, layer in enumerate(layers):
        layer.call = matching_call(layer, i)  # an instance attribute: the eager pass calls it
    try:
        model(tf.constant(target_images, tf.float32), training=False)
    finally:
        for layer in layers:
            del layer.call  # back to the class's own call
        if bar is not None:
            bar.close()
    if len(shifts) != len(layers):  # a layer the forward pass never reached: a graph this code does not know
        raise RuntimeError(f"bn: {len(shifts)} of {len(layers)} BatchNorm layers were reached by the forward pass")
    return {"layers": len(layers), "source_images": int(len(source_images)), "target_images": int(len(target_images)),
            "mean_input_shift_sd": {"first": round(shifts[0], 3), "max": round(max(shifts), 3),
                                    "mean": round(float(np.mean(shifts)), 3)}}
