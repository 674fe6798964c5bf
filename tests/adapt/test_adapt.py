"""`edgelite adapt` on a real fine-tuned Lite0 and a synthetic camera: each method must win back accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.adapt.conftest import top1, tree_hashes

pytestmark = pytest.mark.slow


def test_bn_recovers_at_least_half_of_what_the_shift_lost(domain, adapted):
    a = adapted("bn")
    clean = top1(domain.run, domain.eval_clean, domain.labels)
    before, after = a.report["before"]["eval"]["top1"], a.report["after"]["eval"]["top1"]
    print(f"clean {clean:.3f}, shifted {before:.3f} -> bn {after:.3f}")
    assert clean - before >= 0.1, "the synthetic camera must cost accuracy, or the test means nothing"
    assert after - before >= 0.5 * (clean - before)
    # bn changes BatchNorm statistics only: every weight, scale and offset is as trained
    from edgelite.train.rundir import RunDir

    src = RunDir.load(domain.run).load_model()
    new = RunDir.load(a.path).load_model()
    for ls, ln in zip(src.layers, new.layers, strict=True):
        names = [w.name for w in ls.weights]
        for w, vs, vn in zip(names, ls.get_weights(), ln.get_weights(), strict=True):
            if "moving_" not in w:
                np.testing.assert_array_equal(vs, vn, err_msg=w)


@pytest.mark.parametrize("method", ["tent", "pseudo"])
def test_each_method_improves_shifted_top1(adapted, method):
    a = adapted(method)
    before, after = a.report["before"]["eval"], a.report["after"]["eval"]
    print(f"{method}: {before['top1']:.3f} -> {after['top1']:.3f}")
    assert after["top1"] >= before["top1"] + 0.08
    assert set(after["per_class"]) == set(before["per_class"])
    lo, hi = after["ci95"]
    assert lo <= after["top1"] <= hi and hi - lo < 0.2


def test_adapted_run_has_the_run_shape_and_records_the_adaptation(domain, adapted):
    a = adapted("pseudo")
    src_files = {p.name for p in domain.run.iterdir() if p.is_file()}
    new_files = {p.name for p in a.path.iterdir() if p.is_file()}
    assert {"model.keras", "labels.txt", "config.yaml", "split.json", "metrics.json"} <= new_files
    assert src_files - {"history.csv", "curves.png", "skipped.txt"} <= new_files | {"confusion_matrix.png"}
    cfg = yaml.safe_load((a.path / "config.yaml").read_text())
    assert cfg["adaptation"]["method"] == "pseudo" and cfg["image_size"] == 48
    metrics = json.loads((a.path / "metrics.json").read_text())
    assert metrics["adaptation"]["after"]["eval"]["top1"] == a.report["after"]["eval"]["top1"]
    assert 0 <= metrics["test"]["accuracy"] <= 1  # the adapted model on the source's clean held-out split
    rows = (a.path / "pseudo_labels.csv").read_text().splitlines()
    assert rows[0] == "path,prediction,confidence,used"
    assert len(rows) - 1 == a.report["images"]
    assert sum(r.endswith(",yes") for r in rows) == a.report["pseudo"]["used"] > 0


def test_label_free_signals_without_eval(domain, tmp_path):
    from edgelite.adapt import adapt

    a = adapt(domain.run, domain.unlabeled, tmp_path / "bn", verbose=False)
    before, after = a.report["before"], a.report["after"]
    assert "eval" not in after
    lf0, lf1 = before["label_free"], after["label_free"]
    assert len(lf1["predicted_histogram"]) == len(domain.labels)
    assert sum(lf1["predicted_histogram"]) == a.report["images"]
    # on the shifted frames the adapted model is surer and its predictions look more like training's classes
    assert lf1["mean_confidence"] > lf0["mean_confidence"]
    assert lf1["histogram_distance"] < lf0["histogram_distance"]
    assert not a.warnings


def test_source_run_is_never_modified(domain, adapted):
    for m in ("bn", "tent", "pseudo"):
        adapted(m)
    assert tree_hashes(domain.run) == domain.hashes


def test_one_pass_equals_one_pass_per_layer(domain):
    """The single eager pass gives the statistics of the layer-by-layer definition (one pass per layer)."""
    from edgelite.adapt import batchnorm as B
    from edgelite.adapt.images import load_unlabeled
    from edgelite.train.rundir import RunDir

    src = RunDir.load(domain.run)
    xt, _, _ = load_unlabeled(domain.unlabeled, 48, "bilinear", minimum=16, limit=48)
    xs, _, _ = src.images("train", limit=64)
    fast, ref = src.load_model(), src.load_model()
    B.adapt_batchnorm(fast, B.batchnorm_layers(fast), xs, xt)
    _adapt_batchnorm_per_layer(B, ref, B.batchnorm_layers(ref), xs, xt)
    pf = fast.predict(xt.astype(np.float32), verbose=0)
    pr = ref.predict(xt.astype(np.float32), verbose=0)
    assert np.abs(pf - pr).max() < 1e-3


def _adapt_batchnorm_per_layer(B, model, layers: list, source_images, target_images, batch_size: int = 32) -> None:
    """The reference adapt_batchnorm is checked against: one batched pass over the target images per layer."""
    probe = B.Probe(model, layers, batch_size)
    source = probe(source_images)
    for i, layer in enumerate(layers):
        m_t, v_t = probe(target_images)[i]
        m_s, v_s = source[i]
        new_mu, new_var = B.matched_statistics(layer.moving_mean.numpy().astype(np.float64),
                                               layer.moving_variance.numpy().astype(np.float64),
                                               float(layer.epsilon), m_s, v_s, m_t, v_t)
        layer.moving_mean.assign(new_mu.astype(np.float32))
        layer.moving_variance.assign(new_var.astype(np.float32))


def test_an_adapted_run_is_a_run(domain, adapted, tmp_path):
    """RunDir reads an adapted run (convert takes it: test_convert_run), adapt takes it again, --resume refuses it."""
    import re

    from edgelite.adapt import adapt
    from edgelite.train import train
    from edgelite.train.errors import TrainError
    from edgelite.train.rundir import RunDir

    a = adapted("bn")
    run = RunDir.load(a.path)
    assert run.adaptation["method"] == "bn" and run.adaptation["source_run"] == str(domain.run.resolve())
    assert run.config.image_size == 48 and run.labels == domain.labels and run.config.out == str(a.path)
    again = adapt(a.path, domain.unlabeled, tmp_path / "again", max_images=64, verbose=False)
    assert RunDir.load(again.path).adaptation["source_run"] == str(a.path.resolve())
    with pytest.raises(TrainError, match=re.escape(f"--resume: {a.path} was written by `edgelite adapt` from "
                                                   f"{domain.run.resolve()}")):
        train(out=a.path, resume=True)
