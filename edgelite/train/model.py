"""The classifier: one flat functional graph, raw RGB pixels in, class probabilities out.

    raw uint8/float RGB (H, W, 3) -> in-graph preprocessing -> backbone layers
        -> head_pool (GlobalAveragePooling2D) -> head_dropout -> head_dense (softmax)

Flat (the backbone's layers are the classifier's layers, no nested Model) because tfmot cannot
quantize a model nested in a model. Augmentation is done in the input pipeline, so it can never
end up in the saved model.
"""

from __future__ import annotations

import re

from edgelite.train.tfenv import import_keras

HEAD_LAYERS = ("head_pool", "head_dropout", "head_dense")


def build_classifier(backbone: str, num_classes: int, image_size: int, *, weights: str | None = "imagenet",
                     dropout: float = 0.2):
    keras = import_keras()

    from edgelite.train.backbones import get_backbone

    spec = get_backbone(backbone)
    if image_size < spec.min_size:
        from edgelite.train.errors import TrainError

        raise TrainError(f"--image-size {image_size} is below {backbone}'s minimum of {spec.min_size}")
    inp = keras.Input(shape=(image_size, image_size, 3), name="image")
    try:
        base = spec.builder(inp, weights)
    except (OSError, ValueError) as e:  # a missing package, a corrupt or mismatched weights file
        from edgelite.errors import first_line
        from edgelite.train.errors import TrainError

        raise TrainError(f"--weights {weights}: cannot load ({first_line(e)}); "
                         "use imagenet, none, or a weights file for this backbone") from None
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(base.output)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    out = keras.layers.Dense(num_classes, activation="softmax", name="head_dense")(x)
    model = keras.Model(base.inputs, out, name=f"{backbone}_classifier")
    assert_flat(model)
    return model


def assert_flat(model) -> None:
    keras = import_keras()

    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:  # a programming error, not a user error
        raise RuntimeError(f"classifier graph is not flat: nested models {nested}")


def set_phase(model, backbone: str, phase: int, unfreeze: int | None = None, *,
              from_scratch: bool = False) -> dict[str, int]:
    """Freeze for phase 1 (head only) or phase 2 (top `unfreeze` blocks + top layers + head).

    BatchNorm layers stay frozen in both phases: a frozen BatchNorm in tf-keras runs in inference
    mode, so its statistics are not wrecked by small fine-tuning batches. A backbone with random
    initial weights (`from_scratch`) has nothing to preserve: every layer trains, BatchNorm included.
    Returns counts of trainable layers, for the log.
    """
    keras = import_keras()

    from edgelite.train.backbones import blocks_in_order, get_backbone

    spec = get_backbone(backbone)
    n_unfreeze = spec.default_unfreeze if unfreeze is None else int(unfreeze)
    blocks = blocks_in_order(model, spec)
    open_blocks = set(blocks[len(blocks) - n_unfreeze:]) if (phase == 2 and n_unfreeze > 0) else set()
    block_re, top_re = re.compile(spec.block_pattern), re.compile(spec.top_pattern)
    trainable = 0
    for layer in model.layers:
        if from_scratch:
            layer.trainable = True
            if isinstance(layer, keras.layers.BatchNormalization):
                # the moving statistics start at (0, 1) and must catch up within a few hundred
                # steps; at the usual 0.99 they still describe the initial weights after a short run
                layer.momentum = min(layer.momentum, 0.9)
        elif layer.name in HEAD_LAYERS:
            layer.trainable = True
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        elif phase == 2 and n_unfreeze > 0:
            m = block_re.match(layer.name)
            layer.trainable = bool((m and m.group(1) in open_blocks) or top_re.match(layer.name))
        else:
            layer.trainable = False
        trainable += int(layer.trainable and bool(layer.weights))
    return {"blocks": len(blocks), "unfrozen_blocks": len(open_blocks), "trainable_layers": trainable}
