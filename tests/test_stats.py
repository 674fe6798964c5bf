"""The paired Δ top-1 interval (edgelite.stats) on constructed cases with known answers."""

import numpy as np
import pytest

from edgelite.stats import format_delta, mcnemar_p, pack_correct, paired_delta, unpack_correct


def _pair(n, gained, lost, both_right=None):
    """Correctness vectors of n images: `gained` only the candidate gets right, `lost` only the reference."""
    both_right = n // 2 if both_right is None else both_right
    cand = np.zeros(n, bool)
    ref = np.zeros(n, bool)
    cand[:both_right] = ref[:both_right] = True
    cand[both_right:both_right + gained] = True
    ref[both_right + gained:both_right + gained + lost] = True
    return cand, ref


def test_identical_models_have_a_zero_width_interval_at_zero():
    c = np.random.default_rng(0).random(1000) < 0.8
    r = paired_delta(c, c)
    assert r["delta"] == 0 and r["ci"] == [0.0, 0.0] and r["p"] == 1.0 and not r["distinguishable"]


def test_symmetric_disagreements_are_not_distinguishable_from_zero():
    r = paired_delta(*_pair(1000, gained=15, lost=15))
    lo, hi = r["ci"]
    assert r["delta"] == 0 and lo < 0 < hi and abs(lo + hi) < 1e-9 and not r["distinguishable"]


def test_a_one_sided_loss_is_distinguishable_and_bounded_by_the_discordant_share():
    # 13 images lost, none gained, on 1,000: Δ = -1.3 points, clearly below 0 (p = 2 * 0.5**13)
    r = paired_delta(*_pair(1000, gained=0, lost=13))
    assert r["delta"] == pytest.approx(-1.3)
    assert r["ci"][0] < -1.3 < r["ci"][1] < 0
    assert r["p"] == pytest.approx(2 * 0.5 ** 13) and r["distinguishable"]
    assert (r["gained"], r["lost"], r["images"]) == (0, 13, 1000)


def test_the_interval_agrees_with_mcnemar_away_from_the_boundary():
    for gained, lost in [(10, 10), (10, 30), (5, 25), (30, 40), (30, 60), (0, 2), (0, 9), (40, 40)]:
        r = paired_delta(*_pair(1000, gained, lost))
        lo, hi = r["ci"]
        assert (not (lo <= 0 <= hi)) == (r["p"] < 0.05), (gained, lost, r)


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time():
    # simulated: a candidate that loses 1 point on average (3 % lose, 2 % gain) on 1,000 images
    rng = np.random.default_rng(1)
    hits, trials = 0, 400
    for _ in range(trials):
        u = rng.random(1000)
        ref = rng.random(1000) < 0.85
        cand = ref.copy()
        cand[(u < 0.03) & ref] = False
        cand[(u > 0.98) & ~ref] = True
        true = 100 * (0.02 * 0.15 - 0.03 * 0.85)
        lo, hi = paired_delta(cand, ref)["ci"]
        hits += lo <= true <= hi
    assert 0.92 <= hits / trials <= 0.995


def test_the_interval_matches_a_paired_bootstrap():
    cand, ref = _pair(1000, gained=8, lost=21)
    r = paired_delta(cand, ref)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 1000, size=(4000, 1000))
    boot = 100 * (cand[idx].mean(axis=1) - ref[idx].mean(axis=1))
    b_lo, b_hi = np.percentile(boot, [2.5, 97.5])
    assert r["ci"][0] == pytest.approx(b_lo, abs=0.25) and r["ci"][1] == pytest.approx(b_hi, abs=0.25)


def test_few_images_give_wide_intervals_and_many_give_narrow_ones():
    # the demo's old 300 images against 1,000: the same 1.3-point loss, half in gains, half in losses
    small = paired_delta(*_pair(300, gained=2, lost=6))["ci"]
    large = paired_delta(*_pair(1000, gained=7, lost=20))["ci"]
    assert small[0] < 0 < small[1] and large[1] < 0 and (large[1] - large[0]) < (small[1] - small[0])


def test_exact_mcnemar_matches_known_values():
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 5) == pytest.approx(2 / 32)


def test_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match="same images"):
        paired_delta([1, 0, 1], [1, 0])


def test_format_and_pack_round_trip():
    assert format_delta(-1.3, [-2.1, -0.5]) == "-1.3 [-2.1, -0.5]"
    assert format_delta(0.2, [-0.4, 0.8]).endswith("~0")
    assert format_delta(None) == "-"
    c = np.random.default_rng(2).random(1003) < 0.5
    assert (unpack_correct(pack_correct(c)) == c).all()
