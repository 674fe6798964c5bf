"""Fold inference-mode BatchNorm into the convolution before it, so per-tensor QAT trains the kernel
the .tflite file stores (see :func:`fold_batchnorm`). Works on a functional model's config."""

from __future__ import annotations

import numpy as np

from edgelite.train.tfenv import import_keras


def fold_batchnorm(model):
    """The same classifier with every BatchNormalization that follows a Conv2D / DepthwiseConv2D folded
    into that convolution's kernel and bias (inference-mode BatchNorm is a per-channel affine map),
    and a ReLU6 layer after it turned into ``Activation("relu6")`` (a plain ReLU becomes the
    convolution's own ``activation="relu"``): the same function, in the shapes tfmot quantizes right.

    The TFLite converter folds them anyway. Per-tensor QAT needs it done first: tfmot fake-quantizes
    the kernel *before* BatchNorm, and folding per-channel BatchNorm scales into a kernel trained
    with one scale breaks that scale, so the file would differ from what QAT trained (-3 points on
    the demo). Returns a new model; `model` is untouched.
    """
    keras = import_keras()

    config = model.get_config()
    layers = {lc["name"]: lc for lc in config["layers"]}
    uses = {name: len(readers) for name, readers in _consumers(config).items()}

    folds: dict[str, str] = {}  # batchnorm name -> conv name
    for lc in config["layers"]:
        if lc["class_name"] != "BatchNormalization" or len(lc.get("inbound_nodes", [])) != 1:
            continue
        node = lc["inbound_nodes"][0]
        src = layers.get(node[0][0]) if len(node) == 1 else None
        axis = lc["config"]["axis"]
        if (src is None or src["class_name"] not in ("Conv2D", "DepthwiseConv2D") or uses.get(src["name"]) != 1
                or src["config"].get("activation") not in (None, "linear") or axis not in (-1, 3, [3], [-1])
                or len(src.get("inbound_nodes", [])) != 1):
            continue
        folds[lc["name"]] = src["name"]
    if not folds:
        return model
    # a ReLU6 right after a folded BatchNorm becomes an Activation("relu6") layer: tfmot quantizes its
    # output, and its LayerReLUQuantize transform (meant for Add -> ReLU, but matching Conv2D -> ReLU too)
    # no longer gives the convolution a config that leaves its kernel unquantized
    relu6 = set()
    fused_relu: dict[str, str] = {}
    for lc in config["layers"]:
        node = lc.get("inbound_nodes", [])
        if lc["class_name"] != "ReLU" or len(node) != 1 or len(node[0]) != 1 or node[0][0][0] not in folds:
            continue
        c = lc["config"]
        if c.get("negative_slope", 0.0) != 0.0 or c.get("threshold", 0.0) != 0.0:
            continue
        if c.get("max_value") is not None and float(c["max_value"]) == 6.0:
            relu6.add(lc["name"])  # same function whoever else reads the conv
        elif c.get("max_value") is None and uses.get(node[0][0][0]) == 1:
            fused_relu[lc["name"]] = folds[node[0][0][0]]  # a plain ReLU: tfmot quantizes a conv's own "relu"
    gone = {**folds, **fused_relu}  # layer removed -> the layer that now produces its output

    def rename(ref):
        return [gone.get(ref[0], ref[0]), *ref[1:]]

    new_layers = []
    for lc in config["layers"]:
        if lc["name"] in gone:
            continue
        if lc["name"] in folds.values():
            lc["config"]["use_bias"] = True
            if lc["name"] in fused_relu.values():
                lc["config"]["activation"] = "relu"
        if lc["name"] in relu6:
            lc["class_name"] = "Activation"
            lc["config"] = {k: lc["config"][k] for k in ("name", "trainable", "dtype") if k in lc["config"]}
            lc["config"]["activation"] = "relu6"
        lc["inbound_nodes"] = [[rename(ref) for ref in node] for node in lc.get("inbound_nodes", [])]
        new_layers.append(lc)
    config["layers"] = new_layers
    config["output_layers"] = [rename(ref) for ref in config["output_layers"]]
    folded = keras.Model.from_config(config)

    convs = {conv: bn for bn, conv in folds.items()}
    for layer in folded.layers:
        old = model.get_layer(layer.name)
        if layer.name not in convs:
            layer.set_weights(old.get_weights())
            continue
        bn = model.get_layer(convs[layer.name])
        kernel = old.get_weights()[0].astype(np.float64)
        bias = old.get_weights()[1].astype(np.float64) if old.use_bias else 0.0
        gamma = bn.gamma.numpy() if bn.gamma is not None else 1.0
        beta = bn.beta.numpy() if bn.beta is not None else 0.0
        scale = gamma / np.sqrt(bn.moving_variance.numpy().astype(np.float64) + bn.epsilon)
        if isinstance(old, keras.layers.DepthwiseConv2D):  # (kh, kw, channels, multiplier), out = c * mult + m
            kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
        else:
            kernel = kernel * scale
        bias = beta + (bias - bn.moving_mean.numpy()) * scale
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return folded


def _convs_before_activation(model) -> set[str]:
    """Names of the Conv2D / DepthwiseConv2D layers whose only consumer is an ``Activation("relu6")``
    (what :func:`fold_batchnorm` makes of Conv -> BatchNorm -> ReLU6). Read from the model's config:
    a layer's ``_outbound_nodes`` also count its uses in other models sharing it (a pruned copy)."""
    config = model.get_config()
    kinds = {lc["name"]: lc for lc in config["layers"]}
    consumers = _consumers(config)
    names = set()
    for name, lc in kinds.items():
        users = consumers.get(name, [])
        if lc["class_name"] not in ("Conv2D", "DepthwiseConv2D") or len(users) != 1 or users[0] not in kinds:
            continue
        user = kinds[users[0]]
        if user["class_name"] == "Activation" and user["config"].get("activation") == "relu6":
            names.add(name)
    return names


def _consumers(config: dict) -> dict[str, list[str]]:
    """layer name -> the names of the layers reading its output ("<output>" for a model output), from a
    functional model's config."""
    consumers: dict[str, list[str]] = {}
    for lc in config["layers"]:
        for node in lc.get("inbound_nodes", []):
            for ref in node:
                consumers.setdefault(ref[0], []).append(lc["name"])
    for ref in config["output_layers"]:
        consumers.setdefault(ref[0], []).append("<output>")
    return consumers
