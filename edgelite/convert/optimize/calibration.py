"""Activation ranges for QAT, taken from the float model on calibration images (what post-training
calibration picks), and the model input pinned to raw pixels [0, 255]."""

from __future__ import annotations

import numpy as np

from edgelite.train.tfenv import import_keras, import_tensorflow

INPUT_RANGE = (0.0, 255.0)  # raw RGB pixels: the model input's quantization range by contract


def _quant_vars(qat_model):
    """[(variable, kind, source layer name, 'min'|'max')] for every activation range in the QAT model.

    kind: "input" (the QuantizeLayer after the model input), "output" (the wrapped layer's output,
    also post-activation) or "pre_activation" (before a layer's own non-linear activation).
    """
    out = []
    for layer in qat_model.layers:
        cls = type(layer).__name__
        if cls == "QuantizeLayer":
            for w in layer.weights:
                short = w.name.split("/")[-1].split(":")[0]
                if short.endswith("_min") or short.endswith("_max"):
                    out.append((w, "input", None, short[-3:]))
            continue
        inner = getattr(layer, "layer", None)
        if inner is None:
            continue
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            for prefix, kind in (("output_", "output"), ("post_activation_", "output"),
                                 ("pre_activation_", "pre_activation")):
                if short in (prefix + "min", prefix + "max"):
                    out.append((w, kind, inner.name, short[-3:]))
    return out


def init_quant_ranges(qat_model, float_model, images: np.ndarray, batch_size: int = 16) -> int:
    """Set every activation range of `qat_model` to the min/max (always spanning 0) that the same tensor
    takes in `float_model` over `images` — the ranges post-training calibration would pick."""
    tf = import_tensorflow()
    keras = import_keras()

    qvars = _quant_vars(qat_model)
    wanted: dict[tuple[str, str], None] = {}
    for _, kind, name, _ in qvars:
        if kind != "input":
            wanted[(kind, name)] = None
    # a private copy: layers shared with other models (clone_function reuses them) would hand us the
    # output tensors of another model's graph
    twin_model = keras.models.clone_model(float_model)
    twin_model.set_weights(float_model.get_weights())
    tensors, keys = [], []
    for kind, name in wanted:
        layer = twin_model.get_layer(name)
        if kind == "output":
            tensors.append(layer.output)
        else:  # the layer's output before its activation: same layer, linear activation, same weights
            cfg = dict(layer.get_config(), activation="linear", name=f"{name}__linear")
            twin = type(layer).from_config(cfg)
            tensors.append(twin(layer.input))
            twin.set_weights(layer.get_weights())
        keys.append((kind, name))
    probe = keras.Model(twin_model.inputs, tensors)

    @tf.function
    def stats(batch):
        outs = probe(batch, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return tf.stack([tf.reduce_min(o) for o in outs]), tf.stack([tf.reduce_max(o) for o in outs])

    lo = np.full(len(keys), np.inf)
    hi = np.full(len(keys), -np.inf)
    for i in range(0, len(images), batch_size):
        mn, mx = stats(tf.constant(images[i : i + batch_size], tf.float32))
        lo = np.minimum(lo, mn.numpy())
        hi = np.maximum(hi, mx.numpy())
    ranges = {k: (min(float(a), 0.0), max(float(b), 0.0)) for k, a, b in zip(keys, lo, hi, strict=True)}
    for var, kind, name, end in qvars:
        lo_hi = INPUT_RANGE if kind == "input" else ranges[(kind, name)]
        value = lo_hi[0] if end == "min" else lo_hi[1]
        var.assign(np.full(var.shape, value, np.float32))
    return len(qvars) // 2


def pin_input_range(qat_model) -> None:
    """The input's fake-quant range is exactly raw pixels [0, 255]: the int8 model then takes uint8
    pixels with scale 1 and zero point 0, i.e. straight from the camera."""
    for var, kind, _, end in _quant_vars(qat_model):
        if kind == "input":
            var.assign(np.full(var.shape, INPUT_RANGE[0] if end == "min" else INPUT_RANGE[1], np.float32))

