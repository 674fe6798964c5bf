"""Phase 1 on cached backbone features (edgelite.train.features): the head trained on them is the
classifier's own head, and a run trained this way saves the same flat graph."""

from __future__ import annotations

import numpy as np
import pytest

from edgelite.train import features as F


@pytest.fixture(scope="module")
def small_model():
    from edgelite.train.model import build_classifier, set_phase

    model = build_classifier("efficientnet_lite0", 3, 48, weights=None)
    set_phase(model, "efficientnet_lite0", 1)
    return model


def test_features_then_head_is_the_classifier(small_model):
    x = np.random.default_rng(0).integers(0, 256, (6, 48, 48, 3)).astype(np.uint8)
    views = F.feature_views(small_model, x, views=1, batch_size=4)
    assert views.shape == (1, 6, 1280)
    head = F.head_model(small_model)
    np.testing.assert_allclose(head.predict(views[0], verbose=0), small_model.predict(x.astype(np.float32), verbose=0),
                               rtol=1e-4, atol=1e-6)


def test_augmented_views_differ_from_the_plain_one(small_model):
    x = np.random.default_rng(1).integers(0, 256, (4, 48, 48, 3)).astype(np.uint8)
    views = F.feature_views(small_model, x, views=3, batch_size=4)
    plain = F.feature_model(small_model).predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(views[0], plain, rtol=1e-4, atol=1e-6)
    assert not np.allclose(views[1], views[0], rtol=1e-3, atol=0) and not np.allclose(views[2], views[1], rtol=1e-3, atol=0)


def test_training_the_head_trains_the_classifiers_own_layer(small_model):
    from edgelite.train.tfenv import import_keras

    keras = import_keras()
    head = F.head_model(small_model)
    assert head.get_layer("head_dense") is small_model.get_layer("head_dense")
    before = small_model.get_layer("head_dense").get_weights()[0].copy()
    head.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    feats = np.random.default_rng(2).random((1, 8, 1280)).astype(np.float32)
    head.fit(F.head_dataset(feats, np.arange(8) % 3, 3, 4, shuffle=True), epochs=1, verbose=0)
    assert not np.allclose(small_model.get_layer("head_dense").get_weights()[0], before)


@pytest.mark.slow
def test_cached_and_uncached_phase_1_save_the_same_graph(shapes_dir, tmp_path):
    from edgelite.train import train
    from edgelite.train.rundir import load_run_model

    common = dict(backbone="efficientnet_lite0", image_size=48, epochs=2, fine_tune_epochs=0, batch_size=16,
                  seed=0, verbose=0)
    cached = train(shapes_dir, tmp_path / "cached", cached_views=2, **common)
    plain = train(shapes_dir, tmp_path / "plain", cached_views=0, **common)
    secs = cached.metrics["seconds"]
    assert secs["features"] > 0 and secs["phase1_per_epoch"] is not None and "features" not in plain.metrics["seconds"]
    a, b = load_run_model(cached.path), load_run_model(plain.path)
    assert [(layer.name, type(layer).__name__) for layer in a.layers] == \
        [(layer.name, type(layer).__name__) for layer in b.layers]
    assert cached.metrics["test"]["accuracy"] >= 0.8, cached.metrics["test"]["accuracy"]  # 3 shapes, chance 0.33
