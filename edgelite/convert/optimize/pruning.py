"""Magnitude pruning (tfmot) with a polynomial-decay schedule, unstructured or in blocks that gzip
compresses well; the pruning wrappers are stripped, so the result is a plain float model."""

from __future__ import annotations

import contextlib

import numpy as np

from edgelite.convert.errors import ConvertError
from edgelite.convert.optimize.tuning import (
    Log,
    check_flat,
    compile_model,
    dataset,
    epoch_logger,
    freeze_batchnorm,
    kernel_sparsity,
    prunable,
    tfmot_module,
)
from edgelite.errors import first_line
from edgelite.train.tfenv import import_keras, import_tensorflow


def prune(model, x: np.ndarray, y: np.ndarray, *, sparsity: float, epochs: int, batch_size: int = 32,
          lr: float = 1e-4, block: int = 1, seed: int = 0, log: Log = print):
    """Magnitude-prune Conv2D/Dense kernels to `sparsity` with a polynomial-decay schedule while
    fine-tuning on (x, y), then strip the pruning wrappers. Returns (stripped float model, info).

    block > 1 prunes runs of `block` consecutive weights of one output channel along the input
    channels: the order the weights are stored in a .tflite file, so the zeros lie in runs that
    gzip encodes almost for free (see :class:`_block_pruning`)."""
    tfmot = tfmot_module()
    keras = import_keras()

    check_flat(model, "--prune")
    steps_per_epoch = int(np.ceil(len(y) / batch_size))
    total = max(1, steps_per_epoch * epochs)
    # reach the target after ~70 % of the steps, then recover; masks are updated `frequency` apart,
    # and end_step is a multiple of it so the last update lands exactly on the target sparsity
    frequency = max(1, total // 20)
    end_step = max(frequency, (int(total * 0.7) // frequency) * frequency)
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=float(sparsity),
                                                    begin_step=0, end_step=end_step, frequency=frequency)

    def wrap(layer):
        freeze_batchnorm(layer)
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
    compile_model(pruned, lr)
    log(f"pruning to {sparsity:.0%} sparsity{f' in blocks of {block}' if block > 1 else ''}: {epochs} epoch(s) x "
        f"{steps_per_epoch} steps, target reached at step {end_step}, lr {lr:g}")
    callbacks = [tfmot.sparsity.keras.UpdatePruningStep(),
                 epoch_logger(log, "prune", epochs, lambda: f"sparsity {_wrapped_sparsity(pruned):.2f}")]
    pruned.fit(dataset(x, y, batch_size, seed), epochs=epochs, verbose=0, callbacks=callbacks)
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
