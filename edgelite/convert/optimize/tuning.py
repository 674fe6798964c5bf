"""What pruning and quantization-aware training share: tfmot, the training data, the compile step,
per-epoch progress lines, frozen BatchNorm, and which kernels count as prunable (and how sparse they are).

Both fine-tune the classifier as `edgelite train` builds it: one flat functional graph. BatchNorm stays
frozen (inference mode), as in fine-tuning: small batches would wreck its statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from edgelite.convert.errors import ConvertError
from edgelite.train.tfenv import import_keras, import_tensorflow

Log = Callable[[str], None]


def tfmot_module():
    """tensorflow_model_optimization, imported after TensorFlow's environment is set; ConvertError when missing."""
    try:
        import_tensorflow()  # tfmot picks Keras 2 only when TensorFlow's environment says so
        import tensorflow_model_optimization as tfmot
    except ImportError:
        raise ConvertError("pruning and QAT need tensorflow-model-optimization: pip install 'edgelite[convert]'") from None
    return tfmot


def check_flat(model, what: str) -> None:
    """ConvertError when `model` nests a model: tfmot optimises only flat graphs."""
    keras = import_keras()

    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        raise ConvertError(f"{what}: layer {nested[0]!r} is a model nested in the model; tfmot cannot "
                           "optimise that — build the classifier as one flat graph (as `edgelite train` does)")


# ------------------------------------------------------------------------------------------ training data
def dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, shuffle: bool = True):
    """(uint8 pixels, labels) as a batched float32 tf.data pipeline, shuffled by `seed`."""
    tf = import_tensorflow()

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    return ds.map(lambda a, b: (tf.cast(a, tf.float32), b)).batch(batch_size).prefetch(2)


def compile_model(model, lr: float) -> None:
    """Adam at `lr`, sparse cross-entropy, accuracy: the same for pruning and QAT."""
    keras = import_keras()

    model.compile(optimizer=keras.optimizers.Adam(lr), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])


def epoch_logger(log: Log, what: str, epochs: int, extra: Callable[[], str] | None = None):
    """A Keras callback that logs one line per epoch (loss, accuracy, `extra()`, seconds)."""
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


def freeze_batchnorm(layer):
    """`layer`, with a BatchNormalization made non-trainable (used as a clone function step)."""
    keras = import_keras()

    if isinstance(layer, keras.layers.BatchNormalization):
        layer.trainable = False
    return layer


def prunable(layer) -> bool:
    """Layers we prune: Conv2D and Dense kernels (>97 % of a MobileNet/EfficientNet's weights).

    Depthwise kernels are tiny and every weight in them matters; pruning them costs accuracy for
    no size.
    """
    keras = import_keras()

    return isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and not isinstance(
        layer, keras.layers.DepthwiseConv2D) and not isinstance(layer, keras.layers.Conv2DTranspose)


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
