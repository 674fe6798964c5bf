"""Small, fast checks of the pieces: the statistics formula, intervals, collapse warning, pseudo-label selection."""

from __future__ import annotations

import numpy as np

from edgelite.adapt.batchnorm import matched_statistics
from edgelite.adapt.pseudo import select
from edgelite.adapt.signals import collapse_warning, label_free, wilson


def test_matched_statistics_is_identity_on_the_training_domain_and_matches_outputs_otherwise():
    rng = np.random.default_rng(0)
    mu, var, eps = rng.normal(size=8), rng.uniform(0.5, 2, 8), 1e-3
    m_s, v_s = rng.normal(size=8), rng.uniform(0.5, 2, 8)
    same = matched_statistics(mu, var, eps, m_s, v_s, m_s, v_s)
    np.testing.assert_allclose(same[0], mu)
    np.testing.assert_allclose(same[1], var)
    # a shifted, rescaled input: the normalised output keeps the training output's mean and spread
    m_t, v_t = m_s * 1.5 + 3.0, v_s * 4.0
    new_mu, new_var = matched_statistics(mu, var, eps, m_s, v_s, m_t, v_t)
    out_s = ((m_s - mu) / np.sqrt(var + eps), np.sqrt(v_s) / np.sqrt(var + eps))
    out_t = ((m_t - new_mu) / np.sqrt(new_var + eps), np.sqrt(v_t) / np.sqrt(new_var + eps))
    np.testing.assert_allclose(out_t[0], out_s[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(out_t[1], out_s[1], rtol=1e-3)


def test_wilson_interval():
    lo, hi = wilson(45, 50)
    assert 0.78 < lo < 0.79 and 0.95 < hi < 0.96
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_collapse_warning_fires_only_on_collapse():
    train_hist = np.full(10, 30.0)
    spread = np.eye(10)[np.arange(100) % 10] * 0.9 + 0.01
    collapsed = np.eye(10)[np.where(np.arange(100) % 10 < 8, 3, 5)] * 0.9 + 0.01
    before = label_free(spread, train_hist)
    assert collapse_warning(label_free(spread, train_hist), before, train_hist, list("abcdefghij")) is None
    w = collapse_warning(label_free(collapsed, train_hist), before, train_hist, list("abcdefghij"))
    assert w and "'d'" in w and "\n" not in w


def test_pseudo_selection_is_confident_and_balanced():
    probs = np.array([[0.95, 0.05], [0.97, 0.03], [0.99, 0.01], [0.1, 0.9], [0.6, 0.4]])
    assert sorted(select(probs, 0.8).tolist()) == [1, 2, 3]
