"""Phase 1 on cached features: the frozen backbone runs once per image (or per augmented view), and the head
trains on the pooled features it produced.

With the backbone frozen, phase 1's forward pass through it gives the same pooled vector every epoch
for the same pixels (frozen BatchNorm runs in inference mode; the backbones here have no dropout
below the head), so running it every epoch only repeats work. `--cached-views K` computes K views
per training image once — view 0 the image itself, views 1..K-1 augmented the way the input
pipeline augments — and each epoch the head sees one view per image, drawn at random. The head's
layers are the classifier's own `head_dropout` and `head_dense` layer objects, wired to a feature
input, so training them trains the flat classifier: nothing is copied and the saved model is the
same graph.

    >>> views = feature_views(model, x_train, views=1, batch_size=32)        # doctest: +SKIP
    >>> head = head_model(model)                                            # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from edgelite.train.tfenv import import_keras, import_tensorflow

FEATURE_LAYER = "head_pool"


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


def feature_model(model):
    """The classifier up to its pooled features (shares the classifier's layers)."""
    keras = import_keras()

    return keras.Model(model.inputs, model.get_layer(FEATURE_LAYER).output, name="features")


def head_model(model):
    """The classifier's own head layers on a feature input: training it trains `model`'s head."""
    keras = import_keras()

    dim = model.get_layer(FEATURE_LAYER).output.shape[-1]
    inp = keras.Input(shape=(dim,), name="features")
    x = model.get_layer("head_dropout")(inp)
    return keras.Model(inp, model.get_layer("head_dense")(x), name="head")


def feature_views(model, x: np.ndarray, *, views: int, batch_size: int, seed: int = 0) -> np.ndarray:
    """(views, N, D) float32 pooled features of `x`: view 0 the images as they are, then augmented views."""
    tf = import_tensorflow()

    feats = feature_model(model)
    h, w = x.shape[1:3]
    out = np.empty((views, len(x), feats.output.shape[-1]), np.float32)
    for v in range(views):
        ds = tf.data.Dataset.from_tensor_slices(x)
        if v == 0:
            ds = ds.map(lambda img: tf.cast(img, tf.float32))
        else:
            tf.random.set_seed(seed + v)
            ds = ds.map(lambda img: augment(img, 0, h, w)[0], num_parallel_calls=tf.data.AUTOTUNE)
        out[v] = feats.predict(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE), verbose=0)
    return out


def head_dataset(features: np.ndarray, y: np.ndarray, n_cls: int, batch: int, *, shuffle: bool = False,
                 seed: int = 0):
    """tf.data of (one view's features, one-hot label): each epoch draws a view per image at random."""
    tf = import_tensorflow()

    k = features.shape[0]
    per_image = np.ascontiguousarray(features.transpose(1, 0, 2))  # (N, views, D)
    ds = tf.data.Dataset.from_tensor_slices((per_image, tf.one_hot(y, n_cls)))
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    if k == 1:
        ds = ds.map(lambda f, label: (f[0], label))
    else:
        ds = ds.map(lambda f, label: (f[tf.random.uniform([], 0, k, dtype=tf.int32)], label))
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)
