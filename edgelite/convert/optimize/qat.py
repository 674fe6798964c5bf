"""tfmot: quantization-aware training (QAT) and pruning-preserving QAT (PQAT).

Both work on the classifier as `edgelite train` builds it: one flat functional graph whose first
layer is the in-graph preprocessing (a ``Rescaling``). Two things make tfmot work on it:

* ``quantize_model`` refuses ``Rescaling`` ("Layer rescaling is not supported"). We annotate the
  layers ourselves and give preprocessing layers (``Rescaling``, ``Normalization``: no weights,
  elementwise) an output-only QuantizeConfig, so the whole graph is fake-quantized from the input on.
* tfmot starts every activation range at [-6, 6] and moves it by an EMA with decay 0.999, i.e. 0.1 %
  per step. With raw 0..255 pixels in the graph that clamps the input to 6 and ruins the model for
  thousands of steps. :func:`edgelite.convert.optimize.calibration.init_quant_ranges` sets every activation
  range from the float model's own activations on calibration images (what post-training
  quantization does) before QAT starts.

BatchNorm stays frozen (inference mode), as in fine-tuning: small batches would wreck its statistics.
"""

from __future__ import annotations

import time

import numpy as np

import edgelite.convert.optimize.tuning as tuning
from edgelite.convert.errors import ConvertError
from edgelite.convert.optimize.calibration import init_quant_ranges, pin_input_range
from edgelite.convert.optimize.fold_batchnorm import _convs_before_activation, fold_batchnorm
from edgelite.convert.optimize.tuning import Log, kernel_sparsity, prunable
from edgelite.errors import first_line
from edgelite.train.tfenv import import_keras


def _output_only_config_class():
    tfmot = tuning.tfmot_module()
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
    tfmot = tuning.tfmot_module()
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
    tfmot = tuning.tfmot_module()
    keras = import_keras()

    what = "--qat" + (" with --prune" if preserve_sparsity else "")
    tuning.check_flat(model, what)
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
        tuning.freeze_batchnorm(layer)
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
    tuning.compile_model(qat, lr)
    steps_per_epoch = int(np.ceil(len(y) / batch_size))
    log(f"quantization-aware training{' (sparsity-preserving)' if preserve_sparsity else ''}: {epochs} epoch(s) x "
        f"{steps_per_epoch} steps, lr {lr:g}")
    extra = (lambda: f"sparsity {kernel_sparsity(qat)['achieved']:.2f}") if preserve_sparsity else None
    qat.fit(tuning.dataset(x, y, batch_size, seed), epochs=epochs, verbose=0,
            callbacks=[tuning.epoch_logger(log, "qat", epochs, extra)])
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
