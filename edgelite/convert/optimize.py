"""tfmot: magnitude pruning, quantization-aware training (QAT) and pruning-preserving QAT (PQAT).

All three work on the classifier as `edgelite train` builds it: one flat functional graph whose
first layer is the in-graph preprocessing (a ``Rescaling``). Two things make tfmot work on it:

* ``quantize_model`` refuses ``Rescaling`` ("Layer rescaling is not supported"). We annotate the
  layers ourselves and give preprocessing layers (``Rescaling``, ``Normalization``: no weights,
  elementwise) an output-only QuantizeConfig, so the whole graph is fake-quantized from the input on.
* tfmot starts every activation range at [-6, 6] and moves it by an EMA with decay 0.999, i.e. 0.1 %
  per step. With raw 0..255 pixels in the graph that clamps the input to 6 and ruins the model for
  thousands of steps. :func:`init_quant_ranges` sets every activation range from the float model's
  own activations on calibration images (what post-training quantization does) before QAT starts.

BatchNorm stays frozen (inference mode) in both, as in fine-tuning: small batches would wreck its
statistics.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import numpy as np

from edgelite.convert.errors import ConvertError
from edgelite.errors import first_line
from edgelite.train.tfenv import import_keras, import_tensorflow

INPUT_RANGE = (0.0, 255.0)  # raw RGB pixels: the model input's quantization range by contract

Log = Callable[[str], None]


def _tfmot():
    try:
        import_tensorflow()  # tfmot picks Keras 2 only when TensorFlow's environment says so
        import tensorflow_model_optimization as tfmot
    except ImportError:
        raise ConvertError("pruning and QAT need tensorflow-model-optimization: pip install 'edgelite[convert]'") from None
    return tfmot


def _check_flat(model, what: str) -> None:
    keras = import_keras()

    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        raise ConvertError(f"{what}: layer {nested[0]!r} is a model nested in the model; tfmot cannot "
                           "optimise that — build the classifier as one flat graph (as `edgelite train` does)")


# ------------------------------------------------------------------------------------------ training data
def _dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, shuffle: bool = True):
    tf = import_tensorflow()

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    return ds.map(lambda a, b: (tf.cast(a, tf.float32), b)).batch(batch_size).prefetch(2)


def _compile(model, lr: float) -> None:
    keras = import_keras()

    model.compile(optimizer=keras.optimizers.Adam(lr), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])


def _epoch_logger(log: Log, what: str, epochs: int, extra: Callable[[], str] | None = None):
    keras = import_keras()

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            tail = f", {extra()}" if extra else ""
            log(f"{what} epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.3f}, "
                f"accuracy {logs.get('accuracy', float('nan')):.3f}{tail} ({time.perf_counter() - self.t:.1f} s)")

    return EpochLog()


def _freeze_batchnorm(layer):
    keras = import_keras()

    if isinstance(layer, keras.layers.BatchNormalization):
        layer.trainable = False
    return layer


# ------------------------------------------------------------------------------------------ pruning
def prunable(layer) -> bool:
    """Layers we prune: Conv2D and Dense kernels (>97 % of a MobileNet/EfficientNet's weights).

    Depthwise kernels are tiny and every weight in them matters; pruning them costs accuracy for
    no size.
    """
    keras = import_keras()

    return isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and not isinstance(
        layer, keras.layers.DepthwiseConv2D) and not isinstance(layer, keras.layers.Conv2DTranspose)


def prune(model, x: np.ndarray, y: np.ndarray, *, sparsity: float, epochs: int, batch_size: int = 32,
          lr: float = 1e-4, block: int = 1, seed: int = 0, log: Log = print):
    """Magnitude-prune Conv2D/Dense kernels to `sparsity` with a polynomial-decay schedule while
    fine-tuning on (x, y), then strip the pruning wrappers. Returns (stripped float model, info).

    block > 1 prunes runs of `block` consecutive weights of one output channel along the input
    channels: the order the weights are stored in a .tflite file, so the zeros lie in runs that
    gzip encodes almost for free (see :class:`_block_pruning`)."""
    tfmot = _tfmot()
    keras = import_keras()

    _check_flat(model, "--prune")
    steps_per_epoch = int(np.ceil(len(y) / batch_size))
    total = max(1, steps_per_epoch * epochs)
    # reach the target after ~70 % of the steps, then recover; masks are updated `frequency` apart,
    # and end_step is a multiple of it so the last update lands exactly on the target sparsity
    frequency = max(1, total // 20)
    end_step = max(frequency, (int(total * 0.7) // frequency) * frequency)
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=float(sparsity),
                                                    begin_step=0, end_step=end_step, frequency=frequency)

    def wrap(layer):
        _freeze_batchnorm(layer)
        if prunable(layer):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule, block_size=(block, 1))
        return layer

    if block < 1:
        raise ConvertError(f"--prune-block {block}: give a block length >= 1 (1 = unstructured)")
    try:
        with _block_pruning(block > 1):
            pruned = keras.models.clone_model(model, clone_function=wrap)
    except ValueError as e:
        raise ConvertError(f"--prune: tfmot cannot prune this model ({first_line(e)})") from None
    _compile(pruned, lr)
    log(f"pruning to {sparsity:.0%} sparsity{f' in blocks of {block}' if block > 1 else ''}: {epochs} epoch(s) x "
        f"{steps_per_epoch} steps, target reached at step {end_step}, lr {lr:g}")
    callbacks = [tfmot.sparsity.keras.UpdatePruningStep(),
                 _epoch_logger(log, "prune", epochs, lambda: f"sparsity {_wrapped_sparsity(pruned):.2f}")]
    pruned.fit(_dataset(x, y, batch_size, seed), epochs=epochs, verbose=0, callbacks=callbacks)
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    info = {"target": float(sparsity), **kernel_sparsity(stripped), "epochs": epochs, "steps": total,
            "end_step": end_step, "frequency": frequency, "lr": lr, "block": block}
    log(f"pruned: {info['achieved']:.3f} of the weights in {info['layers']} Conv2D/Dense layers are zero "
        f"({info['overall']:.3f} of all weights)")
    return stripped, info


@contextlib.contextmanager
def _block_pruning(enabled: bool):
    """While the pruning wrappers are built: tfmot's block pruning, extended to convolution kernels.

    tfmot pools |w| over (height, width) blocks of rank-2 kernels only (Dense). A Conv2D kernel
    (kh, kw, in, out) is viewed here as the matrix (kh*kw*in, out): a column is one output channel's
    weights in exactly the order a .tflite CONV_2D filter (out, kh, kw, in) stores them, and a
    (block, 1) block is `block` neighbours in the file. A Dense kernel (in, out) is already that
    matrix (FULLY_CONNECTED stores (out, in)). Thresholds, schedule and masks stay tfmot's.
    """
    if not enabled:
        yield
        return
    tf = import_tensorflow()
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl

    base = pruning_impl.Pruning

    class KernelBlockPruning(base):
        def _validate_block(self):
            pass

        def _maybe_update_block_mask(self, weights):
            if self._block_size == [1, 1] or self._sparsity_m_by_n:
                return super()._maybe_update_block_mask(weights)
            # (block, 1) blocks of the (rows, out) matrix; mean |w| per block (a short last block
            # averages what it has). Done here rather than in tfmot's block path, which squeezes a
            # (1, out) pooled matrix to rank 1 and fails (a 16-channel input with block 16)
            block = int(self._block_size[0])
            matrix = tf.abs(tf.reshape(weights, [-1, weights.shape[-1]]))
            rows, cols = int(matrix.shape[0]), int(matrix.shape[1])
            pad = (-rows) % block
            sums = tf.reduce_sum(tf.reshape(tf.pad(matrix, [[0, pad], [0, 0]]), [-1, block, cols]), axis=1)
            counts = tf.reduce_sum(tf.reshape(tf.pad(tf.ones_like(matrix), [[0, pad], [0, 0]]), [-1, block, cols]), 1)
            threshold, mask = self._update_mask(sums / counts)
            mask = tf.repeat(mask, block, axis=0)[:rows]
            return threshold, tf.reshape(mask, tf.shape(weights))

    pruning_impl.Pruning = KernelBlockPruning
    try:
        yield
    finally:
        pruning_impl.Pruning = base


def _wrapped_sparsity(model) -> float:
    zeros = total = 0
    for layer in model.layers:
        if type(layer).__name__ == "PruneLowMagnitude":
            k = layer.layer.kernel.numpy()
            zeros += int((k == 0).sum())
            total += k.size
    return zeros / total if total else 0.0


def kernel_sparsity(model) -> dict:
    """Fraction of zero weights in the prunable (Conv2D/Dense) kernels ("achieved") and in every
    kernel including depthwise ones ("overall"). Works on plain, pruned-and-stripped and QAT models."""
    zeros = total = all_zeros = all_total = layers = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # QuantizeWrapper -> the wrapped layer
        # the variable, not the attribute: a QuantizeWrapper points `inner.kernel` at its fake-quantized tensor
        # (a QuantizeWrapper tracks the wrapped layer's weights itself, so look at the outer layer)
        kernels = [w for w in layer.weights if w.name.split("/")[-1].split(":")[0] in ("kernel", "depthwise_kernel")]
        if not kernels:
            continue
        k = kernels[0].numpy()
        all_zeros += int((k == 0).sum())
        all_total += k.size
        if prunable(inner):
            layers += 1
            zeros += int((k == 0).sum())
            total += k.size
    return {"achieved": zeros / total if total else 0.0, "overall": all_zeros / all_total if all_total else 0.0,
            "layers": layers, "pruned_weights": total}


# ------------------------------------------------------------------------------------------ QAT
def _output_only_config_class():
    tfmot = _tfmot()
    Q = tfmot.quantization.keras

    class OutputOnlyQuantizeConfig(Q.QuantizeConfig):
        """Quantize only the output of a weightless elementwise layer (preprocessing: Rescaling, Normalization)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [Q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                        narrow_range=False)]

        def get_config(self):
            return {}

    return OutputOnlyQuantizeConfig


def _kernel_only_config_class():
    tfmot = _tfmot()
    Q = tfmot.quantization.keras

    class KernelOnlyQuantizeConfig(Q.QuantizeConfig):
        """Fake-quantize a convolution's kernel with one scale and nothing else: the Activation("relu6")
        after it quantizes the output, as the .tflite file's CONV_2D with a fused RELU6 does."""

        def __init__(self, attr: str = "kernel", preserve_sparsity: bool = False):
            self.attr = attr
            self.preserve_sparsity = preserve_sparsity
            if preserve_sparsity:
                from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
                    prune_preserve_quantize_registry as ppr,
                )

                self.quantizer = ppr.PrunePreserveDefault8BitWeightsQuantizer()
            else:
                self.quantizer = Q.quantizers.LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True,
                                                                 narrow_range=True)

        def get_weights_and_quantizers(self, layer):
            return [(getattr(layer, self.attr), self.quantizer)]

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            setattr(layer, self.attr, quantize_weights[0])

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {"attr": self.attr, "preserve_sparsity": self.preserve_sparsity}

    return KernelOnlyQuantizeConfig


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


def _unquantized_kernels(qat_model) -> list[str]:
    """Conv/Dense layers whose kernel tfmot does not fake-quantize (its Conv2D -> ReLU transform gives
    such a conv a no-op config): QAT never trains them at int8, the converter quantizes them afterwards."""
    out = []
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", None)
        if inner is None or type(inner).__name__ not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            continue
        if not any(w.name.split("/")[-1].split(":")[0].endswith("kernel_min") for w in layer.weights):
            out.append(inner.name)
    return out


def _preprocessing_layer(layer) -> bool:
    keras = import_keras()

    return isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization))


def quantize_aware(model, x: np.ndarray, y: np.ndarray, calibration: np.ndarray, *, epochs: int,
                   batch_size: int = 32, lr: float = 1e-5, preserve_sparsity: bool = False, per_tensor: bool = False,
                   seed: int = 0, log: Log = print):
    """Quantization-aware fine-tuning of `model` on (x, y); with `preserve_sparsity` tfmot's
    Default8BitPrunePreserveQuantizeScheme keeps the zeros of a pruned model; with `per_tensor` every
    weight tensor trains with one scale (tfmot's ``disable_per_axis``), as ``--per-tensor`` exports it.
    Returns (qat model, info)."""
    tfmot = _tfmot()
    keras = import_keras()

    what = "--qat" + (" with --prune" if preserve_sparsity else "")
    _check_flat(model, what)
    kernel_only: set[str] = set()
    if per_tensor:
        model = fold_batchnorm(model)
        kernel_only = _convs_before_activation(model)
    Q = tfmot.quantization.keras
    config_cls = _output_only_config_class()
    if preserve_sparsity:
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
            default_8bit_prune_preserve_quantize_scheme as pqs,
        )

        scheme = _per_tensor_prune_preserve_scheme() if per_tensor else pqs.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = Q.default_8bit.Default8BitQuantizeScheme(disable_per_axis=per_tensor)
    kernel_cls = _kernel_only_config_class()

    def annotate(layer):
        _freeze_batchnorm(layer)
        if _preprocessing_layer(layer):
            return Q.quantize_annotate_layer(layer, quantize_config=config_cls())
        if layer.name in kernel_only:
            return Q.quantize_annotate_layer(layer, quantize_config=kernel_cls(
                "depthwise_kernel" if isinstance(layer, keras.layers.DepthwiseConv2D) else "kernel",
                preserve_sparsity and prunable(layer)))
        return Q.quantize_annotate_layer(layer)

    sparsity_before = kernel_sparsity(model)["achieved"] if preserve_sparsity else None
    try:
        annotated = keras.models.clone_model(model, clone_function=annotate)
        with Q.quantize_scope({"OutputOnlyQuantizeConfig": config_cls, "KernelOnlyQuantizeConfig": kernel_cls}):
            qat = Q.quantize_apply(annotated, scheme)
    except (ValueError, RuntimeError, TypeError) as e:
        raise ConvertError(_tfmot_error(what, e)) from None
    for layer in qat.layers:  # quantize_apply rebuilds layers from config: freeze BatchNorm again
        inner = getattr(layer, "layer", None)
        if isinstance(inner, keras.layers.BatchNormalization):
            layer.trainable = False
    t = time.perf_counter()
    n_ranges = init_quant_ranges(qat, model, calibration, batch_size=min(batch_size, 16))
    log(f"QAT: {n_ranges} activation ranges initialised from the float model on {len(calibration)} images "
        f"({time.perf_counter() - t:.1f} s)")
    _compile(qat, lr)
    steps_per_epoch = int(np.ceil(len(y) / batch_size))
    log(f"quantization-aware training{' (sparsity-preserving)' if preserve_sparsity else ''}: {epochs} epoch(s) x "
        f"{steps_per_epoch} steps, lr {lr:g}")
    extra = (lambda: f"sparsity {kernel_sparsity(qat)['achieved']:.2f}") if preserve_sparsity else None
    qat.fit(_dataset(x, y, batch_size, seed), epochs=epochs, verbose=0,
            callbacks=[_epoch_logger(log, "qat", epochs, extra)])
    pin_input_range(qat)
    unquantized = _unquantized_kernels(qat)
    if unquantized:
        log(f"note: tfmot did not fake-quantize the kernels of {len(unquantized)} layer(s) during QAT "
            f"({', '.join(unquantized[:3])}{', ...' if len(unquantized) > 3 else ''}: a Conv -> ReLU pair); "
            "the converter quantizes them after training")
    info = {"epochs": epochs, "steps": steps_per_epoch * epochs, "lr": lr, "ranges_initialised": n_ranges,
            "unquantized_kernels": unquantized,
            "scheme": type(scheme).__name__, "per_channel": not per_tensor}
    if preserve_sparsity:
        after = kernel_sparsity(qat)["achieved"]
        info.update({"sparsity_before": sparsity_before, "sparsity_after": after})
        log(f"PQAT kept the sparsity: {sparsity_before:.3f} -> {after:.3f}")
    return qat, info


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


def _per_tensor_prune_preserve_scheme():
    """tfmot's sparsity-preserving scheme with one scale per weight tensor.

    tfmot has ``disable_per_axis`` for its plain 8-bit scheme only: the prune-preserve registry asks the
    per-axis registry for each layer's config and accepts only the per-axis conv config for Conv2D.
    Here it asks the per-tensor registry, and a Conv2D gets the per-tensor sparsity-preserving quantizer.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
        default_8bit_prune_preserve_quantize_scheme as pqs,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
        prune_preserve_quantize_registry as ppr,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as d8,
    )

    class PerTensorRegistry(ppr.Default8bitPrunePreserveQuantizeRegistry):
        _LAYERS_CONFIG_MAP = {**ppr.PrunePreserveQuantizeRegistry._LAYERS_CONFIG_MAP}

        def get_quantize_config(self, layer):
            config = d8.Default8BitQuantizeRegistry(disable_per_axis=True).get_quantize_config(layer)
            return self.apply_sparsity_preserve_quantize_config(layer, config)

    PerTensorRegistry._LAYERS_CONFIG_MAP[ppr.layers.Conv2D] = ppr._PrunePreserveInfo(
        ["kernel"], ["Default8BitQuantizeConfig"])

    class PerTensorPrunePreserveScheme(pqs.Default8BitPrunePreserveQuantizeScheme):
        def get_quantize_registry(self):
            return PerTensorRegistry()

    return PerTensorPrunePreserveScheme()


def _tfmot_error(what: str, e: Exception) -> str:
    """tfmot's refusal as one line that names the layer and says what to do."""
    import re

    text = str(e).strip()
    m = re.search(r"Layer ([^\s:]+):?\s*(?:<class '(?:[\w.]*\.)?(\w+)'>)? is not supported", text)
    if m:
        kind = f" ({m.group(2)})" if m.group(2) else ""
        return (f"{what}: tfmot cannot quantize layer {m.group(1)!r}{kind}; drop --qat (post-training int8 "
                "still works) or replace the layer with a supported one")
    return f"{what}: tfmot cannot quantize this model ({first_line(e)})"


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
