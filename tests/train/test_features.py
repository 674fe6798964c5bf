"""Training on cached activations (edgelite.train.features): phase 1's head and phase 2's top blocks
trained on them are the classifier's own layers, the cached numbers are the ones a pass from the
pixels gives, and a run trained this way saves the same flat graph."""

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
    views = F.build_cache(small_model, x, views=1, batch_size=4)[0]
    assert views.shape == (1, 6, 1280)
    head = F.head_model(small_model)
    np.testing.assert_allclose(head.predict(views[0], verbose=0), small_model.predict(x.astype(np.float32), verbose=0),
                               rtol=1e-4, atol=1e-6)


def test_augmented_views_differ_from_the_plain_one(small_model):
    x = np.random.default_rng(1).integers(0, 256, (4, 48, 48, 3)).astype(np.uint8)
    from edgelite.train.tfenv import import_keras

    views = F.build_cache(small_model, x, views=3, batch_size=4)[0]
    pooled = import_keras().Model(small_model.inputs, small_model.get_layer(F.FEATURE_LAYER).output)
    plain = pooled.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(views[0], plain, rtol=1e-4, atol=1e-6)
    assert not np.allclose(views[1], views[0], rtol=1e-3, atol=0) and not np.allclose(views[2], views[1], rtol=1e-3, atol=0)


@pytest.fixture()
def phase2_model():
    from edgelite.train.model import build_classifier, set_phase

    model = build_classifier("efficientnet_lite0", 3, 48, weights=None)
    set_phase(model, "efficientnet_lite0", 2, 4)
    return model


def test_phase_2_splits_below_the_unfrozen_blocks_and_the_top_continues_exactly(phase2_model):
    split = F.split_tensor(phase2_model)
    assert split is not None and split._keras_history.layer.name == "block6a_project_bn"  # block 6a frozen, 6b.. open
    x = np.random.default_rng(3).integers(0, 256, (5, 48, 48, 3)).astype(np.uint8)
    val = np.random.default_rng(4).integers(0, 256, (3, 48, 48, 3)).astype(np.uint8)
    acts, pooled, val_acts, val_pooled = F.build_cache(phase2_model, x, views=2, batch_size=4, split=split, plain=val)
    assert acts.shape == (2, 5, *split.shape[1:]) and pooled.shape == (2, 5, 1280) and val_acts.shape[:2] == (1, 3)
    top = F.suffix_model(phase2_model, split)
    assert top.get_layer("block7a_project_conv") is phase2_model.get_layer("block7a_project_conv")
    assert {w.name for w in top.trainable_weights} == {w.name for w in phase2_model.trainable_weights}
    whole = phase2_model.predict(np.concatenate([x, val]).astype(np.float32), verbose=0)
    np.testing.assert_allclose(top.predict(acts[0], verbose=0), whole[:5], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(top.predict(val_acts[0], verbose=0), whole[5:], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(F.head_model(phase2_model).predict(pooled[0], verbose=0), whole[:5], rtol=1e-4, atol=1e-6)


def test_no_split_when_nothing_is_frozen_or_two_tensors_cross():
    from edgelite.train.model import build_classifier, set_phase

    model = build_classifier("efficientnet_lite0", 3, 48, weights=None)
    set_phase(model, "efficientnet_lite0", 2, from_scratch=True)
    assert F.split_tensor(model) is None
    set_phase(model, "efficientnet_lite0", 1)
    assert F.split_tensor(model)._keras_history.layer.name == "top_activation"  # phase 1: the head
    # open a layer inside a residual block: the block's input and its expand path both cross
    model.get_layer("block6c_project_conv").trainable = True
    assert F.split_tensor(model) is None


def test_training_the_head_trains_the_classifiers_own_layer(small_model):
    from edgelite.train.tfenv import import_keras

    keras = import_keras()
    head = F.head_model(small_model)
    assert head.get_layer("head_dense") is small_model.get_layer("head_dense")
    before = small_model.get_layer("head_dense").get_weights()[0].copy()
    head.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    feats = np.random.default_rng(2).random((1, 8, 1280)).astype(np.float32)
    head.fit(F.cached_dataset(feats, np.arange(8) % 3, 3, 4, shuffle=True), epochs=1, verbose=0)
    assert not np.allclose(small_model.get_layer("head_dense").get_weights()[0], before)


@pytest.mark.slow
def test_cached_and_uncached_training_save_the_same_graph(shapes_dir, tmp_path):
    from edgelite.train import train
    from edgelite.train.rundir import load_run_model

    common = dict(backbone="efficientnet_lite0", image_size=48, epochs=2, fine_tune_epochs=1, batch_size=16,
                  seed=0, verbose=0)
    cached = train(shapes_dir, tmp_path / "cached", cached_views=2, **common)
    plain = train(shapes_dir, tmp_path / "plain", cached_views=0, **common)
    secs = cached.metrics["seconds"]
    assert secs["features"] > 0 and secs["phase2_per_epoch"] is not None and "features" not in plain.metrics["seconds"]
    a, b = load_run_model(cached.path), load_run_model(plain.path)
    assert [(layer.name, type(layer).__name__) for layer in a.layers] == \
        [(layer.name, type(layer).__name__) for layer in b.layers]
    assert cached.metrics["test"]["accuracy"] >= 0.8, cached.metrics["test"]["accuracy"]  # 3 shapes, chance 0.33
    # phase 2 trained the top blocks on the cache and left the frozen ones as the weights file has them
    from edgelite.train.model import build_classifier

    start = build_classifier("efficientnet_lite0", a.output.shape[-1], 48, weights=cached.config.weights)
    for name, trains in (("block7a_project_conv", True), ("block6b_expand_conv", True), ("block6a_expand_conv", False)):
        moved = not np.allclose(a.get_layer(name).get_weights()[0], start.get_layer(name).get_weights()[0])
        assert moved == trains, name


@pytest.mark.slow
def test_a_phase_2_cache_over_the_memory_budget_falls_back_to_the_images(shapes_dir, tmp_path, monkeypatch, capsys):
    from edgelite.train import train

    monkeypatch.setattr(F, "MAX_CACHE_BYTES", 1024)
    run = train(shapes_dir, tmp_path / "run", backbone="efficientnet_lite0", image_size=48, epochs=1,
                fine_tune_epochs=1, batch_size=16, seed=0, verbose=0)
    out = capsys.readouterr().out
    assert "phase 2 runs the whole backbone every epoch: its cache of" in out and "pooled features" in out
    assert run.metrics["seconds"]["phase2_per_epoch"] is not None
