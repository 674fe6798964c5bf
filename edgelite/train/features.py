"""Training on cached activations: the frozen layers run once per image (or per augmented view), and
only the trainable layers run every epoch.

With BatchNorm frozen (it runs in inference mode) and no dropout below the unfrozen layers, the frozen
part of the network gives the same output every epoch for the same pixels, so running it every epoch
only repeats work. `--cached-views K` computes K views per training image once — view 0 the image
itself, views 1..K-1 augmented the way the input pipeline augments — and each epoch every image
contributes one view, drawn at random:

- phase 1 (head only) trains the head on the pooled features (`head_pool`);
- phase 2 (top blocks unfrozen) trains the top blocks and the head on the activations where the frozen
  layers end (`split_tensor`: the one tensor the trainable layers read from the frozen ones, e.g.
  EfficientNet-Lite0's block6a output, 3x3x192 at 96 px), when that cache fits in memory.

Both phases come from one pass over the images. The models trained are built from the classifier's own
layer objects (`keras.Model(split, model.output)` shares them), so training them trains the flat
classifier: nothing is copied and the saved model is the same graph. Keras' EfficientNetB0 has
stochastic depth (dropout) inside its blocks: in the frozen blocks it is off when cached. (The example needs TensorFlow and a model: skipped as a doctest.)

    >>> cache = build_cache(model, x_train, views=1, batch_size=32, split=split_tensor(model))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time

import numpy as np

from edgelite.train.tfenv import import_keras, import_tensorflow

FEATURE_LAYER = "head_pool"
MAX_CACHE_BYTES = 4 << 30  # and at most a quarter of the memory available now


def augment(img, label, h: int, w: int):
    """The training augmentation (flip, 80-100 % zoom crop, brightness, contrast) of one float image."""
    tf = import_tensorflow()

    img = tf.cast(img, tf.float32)
    img = tf.image.random_flip_left_right(img)
    # random zoom-in crop to 80-100 % of the side, then back to the model size
    scale = tf.random.uniform([], 0.8, 1.0)
    ch = tf.cast(tf.cast(h, tf.float32) * scale, tf.int32)
    cw = tf.cast(tf.cast(w, tf.float32) * scale, tf.int32)
    img = tf.image.random_crop(img, tf.stack([ch, cw, 3]))
    img = tf.image.resize(img, (h, w))
    img = tf.image.random_brightness(img, 20.0)
    img = tf.image.random_contrast(img, 0.85, 1.15)
    return tf.clip_by_value(img, 0.0, 255.0), label


def head_model(model):
    """The classifier's own head layers on a feature input: training it trains `model`'s head."""
    keras = import_keras()

    dim = model.get_layer(FEATURE_LAYER).output.shape[-1]
    inp = keras.Input(shape=(dim,), name="features")
    x = model.get_layer("head_dropout")(inp)
    return keras.Model(inp, model.get_layer("head_dense")(x), name="head")


def split_tensor(model):
    """The one tensor through which the trainable layers read the frozen ones, or None (nothing frozen,
    nothing trainable, or several tensors cross). Call it with the phase's trainable flags set."""
    layers = model.layers
    keras = import_keras()

    # the first layer that trains (or, weightless, is marked to run in training mode: the head's dropout)
    first = next((i for i, layer in enumerate(layers)
                  if layer.trainable and not isinstance(layer, keras.layers.InputLayer)), None)
    if not first or not any(layer.weights for layer in layers[:first]):  # nothing frozen worth caching
        return None
    frozen = {id(layer) for layer in layers[:first]}
    crossing = {}
    for layer in layers[first:]:
        node = layer._inbound_nodes[0]  # the classifier's own call (sub-models add later nodes)
        for t in node.keras_inputs:
            if id(t._keras_history.layer) in frozen:
                crossing[id(t)] = t
    return next(iter(crossing.values())) if len(crossing) == 1 else None


def suffix_model(model, split):
    """The classifier from `split` to its output, on the classifier's own layers."""
    keras = import_keras()

    return keras.Model(split, model.output, name="top")


def cache_bytes(split, images: int) -> int:
    """Bytes of float32 activations at `split` for `images` images (or image views)."""
    return int(np.prod(split.shape[1:])) * 4 * images


def cache_budget() -> int:
    """Bytes a cache may take: MAX_CACHE_BYTES, and no more than a quarter of the memory available."""
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return min(MAX_CACHE_BYTES, avail // 4)


def build_cache(model, x: np.ndarray, *, views: int, batch_size: int, split=None, seed: int = 0,
                plain: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Activations of the frozen layers, one pass: (views, N, ...) float32 at `split` (default: the pooled
    features) of `x`, view 0 the images as they are, then augmented views; with a `split`, also the pooled
    features of those views. `plain` images (the validation split) get view 0 only, from the same pass.
    Returns (x's cache, [x's pooled,] plain's cache, [plain's pooled])."""
    tf = import_tensorflow()
    keras = import_keras()

    pooled_t = model.get_layer(FEATURE_LAYER).output
    outs = [pooled_t] if split is None else [split, pooled_t]
    front = keras.Model(model.inputs, outs, name="frozen")  # one model: its predict function traces once
    h, w = x.shape[1:3]
    n_plain = 0 if plain is None else len(plain)
    caches = [np.empty((views, len(x), *t.shape[1:]), np.float32) for t in outs]
    for v in range(views):
        if v == 0:  # the images as they are: straight from numpy, in big batches (inference only)
            got = front.predict(x if not n_plain else np.concatenate([x, plain]), batch_size=max(batch_size, 128),
                                verbose=0)
        else:
            tf.random.set_seed(seed + v)
            ds = tf.data.Dataset.from_tensor_slices(x).map(lambda img: augment(img, 0, h, w)[0],
                                                           num_parallel_calls=tf.data.AUTOTUNE)
            got = front.predict(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE), verbose=0)
        got = got if isinstance(got, list) else [got]
        for cache, g in zip(caches, got, strict=True):
            cache[v] = g[:len(x)]
        if v == 0:
            plain_caches = [g[None, len(x):] for g in got]
    return (*caches, *(plain_caches if n_plain else [None] * len(outs)))


def cached_dataset(cache: np.ndarray, y: np.ndarray, n_cls: int, batch: int, *, shuffle: bool = False,
                   seed: int = 0):
    """tf.data of (one view's cached activations, one-hot label): each epoch draws a view per image at random."""
    tf = import_tensorflow()

    k = cache.shape[0]
    per_image = np.ascontiguousarray(np.moveaxis(cache, 0, 1))  # (N, views, ...)
    ds = tf.data.Dataset.from_tensor_slices((per_image, tf.one_hot(y, n_cls)))
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    if k == 1:
        ds = ds.map(lambda f, label: (f[0], label))
    else:
        ds = ds.map(lambda f, label: (f[tf.random.uniform([], 0, k, dtype=tf.int32)], label))
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def _shape(t) -> str:
    return "x".join(map(str, t.shape[1:]))


class ActivationCache:
    """The frozen layers' outputs, computed once by `train`: pooled features for phase 1 and, when phase 2
    follows and its cache fits in memory, the activations where phase 2's frozen layers end."""

    def __init__(self, cfg, model, ys, split, train, val, pooled_train, pooled_val):
        self.cfg, self.model, self.ys, self.split = cfg, model, ys, split
        self.acts = {"train": train, "val": val}
        self.pooled = {"train": pooled_train, "val": pooled_val}

    @classmethod
    def build(cls, cfg, model, xs, ys, phase: int, batch: int, seconds: dict) -> ActivationCache:
        from edgelite.train.model import set_phase

        views = cfg.cached_views if cfg.augment else 1  # without augmentation every view is the same
        split = None
        if cfg.fine_tune_epochs > 0 and cfg.unfreeze != 0:  # where will phase 2's frozen layers end?
            set_phase(model, cfg.backbone, 2, cfg.unfreeze)
            split = split_tensor(model)
            set_phase(model, cfg.backbone, phase, cfg.unfreeze)
            if split is not None:
                need, budget = cache_bytes(split, len(ys["train"]) * views + len(ys["val"])), cache_budget()
                if need > budget:
                    print(f"phase 2 runs the whole backbone every epoch: its cache of {need / 2**30:.1f} GiB "
                          f"({_shape(split)} per image and view) is over the {budget / 2**30:.1f} GiB allowed "
                          "(fewer --cached-views or a smaller --image-size fit)", flush=True)
                    split = None
        t = time.perf_counter()
        got = build_cache(model, xs["train"], views=views, batch_size=batch, split=split, seed=cfg.seed,
                          plain=xs["val"] if len(ys["val"]) else None)
        if split is None:
            train, val = pooled_train, pooled_val = got
        else:
            train, pooled_train, val, pooled_val = got
        seconds["features"] = round(time.perf_counter() - t, 1)
        where = "pooled features" if split is None else f"{_shape(split)} activations below the unfrozen blocks"
        plain = " (unaugmented: --cached-views K > 1 adds augmented views)" if views == 1 and cfg.augment else ""
        print(f"frozen layers run once: {where} of {len(ys['train'])} train x {views} view(s){plain} + "
              f"{len(ys['val'])} val images in {seconds['features']:.1f} s; training runs on them", flush=True)
        return cls(cfg, model, ys, split, train, val, pooled_train, pooled_val)

    def fit_inputs(self, phase: int, n_cls: int, batch: int):
        """(model to fit, its fit() data arguments, validation data) on the cache, or None (phase 2
        without its cache). One view: numpy arrays, which Keras slices from one tensor without a new
        tf.data iterator every epoch; more views: a tf.data pipeline drawing a view per image."""
        if phase == 1:
            fit_model, data = head_model(self.model), self.pooled
        elif self.split is not None:
            fit_model, data = suffix_model(self.model, self.split), self.acts
        else:
            return None
        onehot = {k: np.eye(n_cls, dtype=np.float32)[self.ys[k]] for k in ("train", "val")}
        val = (data["val"][0], onehot["val"]) if data["val"] is not None else None
        if data["train"].shape[0] == 1:
            return fit_model, {"x": data["train"][0], "y": onehot["train"], "batch_size": batch, "shuffle": True}, val
        train = cached_dataset(data["train"], self.ys["train"], n_cls, batch, shuffle=True, seed=self.cfg.seed)
        return fit_model, {"x": train}, val
