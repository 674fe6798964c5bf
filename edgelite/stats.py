"""Accuracy differences with error bars: a paired 95 % interval for Δ top-1 between two models scored on
the same held-out images. Standard library + numpy only (convert, bench and device code import it).

Two models scored on the same n images differ only on the *discordant* images: b where the candidate
is right and the reference wrong, c the other way round; Δ top-1 = (b − c) / n. The interval is
Bonett & Price's (2012) adjusted Wald interval for a difference of paired proportions (one
pseudo-image added to each discordant cell), which keeps its 95 % coverage down to a handful of
disagreements, where the plain Wald interval and the interval conditional on b + c do not (the
tests check coverage by simulation and against a paired bootstrap). "Distinguishable" means the
interval excludes 0; McNemar's exact two-sided p-value on (b, c) is reported beside it.

    >>> r = paired_delta([1, 1, 0, 1] * 250, [1, 0, 1, 1] * 250)
    >>> r["delta"], r["distinguishable"]
    (0.0, False)
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

CONFIDENCE = 0.95


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p), summed in log space (exact enough for n in the tens of thousands)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (1.0 when there are none)."""
    d = b + c
    if d == 0:
        return 1.0
    return min(1.0, 2 * _binom_cdf(min(b, c), d, 0.5))


def paired_delta(candidate_correct, reference_correct, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Δ top-1 in points (candidate − reference) with its paired `confidence` interval, from per-image
    correctness (bools or 0/1) of two models on the same images, in the same order.

    Returns {"delta", "ci": [lo, hi], "p", "images", "gained", "lost", "distinguishable"}: points are
    percentage points; gained/lost count the images only the candidate/only the reference got right;
    distinguishable is False when the interval contains 0 (the difference may be noise).

    >>> r = paired_delta([1] * 990 + [0] * 10, [1] * 1000)
    >>> r["delta"], [round(v, 2) for v in r["ci"]], r["distinguishable"]
    (-1.0, [-1.67, -0.32], True)
    """
    a = np.asarray(candidate_correct, dtype=bool).ravel()
    r = np.asarray(reference_correct, dtype=bool).ravel()
    if a.shape != r.shape:
        raise ValueError(f"paired_delta: {a.size} and {r.size} images; score both models on the same images")
    n = int(a.size)
    if n == 0:
        return {"delta": None, "ci": None, "p": None, "images": 0, "gained": 0, "lost": 0, "distinguishable": False}
    b = int((a & ~r).sum())
    c = int((~a & r).sum())
    if b == c == 0:  # the two models agree image by image: nothing varies
        lo = hi = 0.0
    else:  # Bonett & Price (2012): add one pseudo-image to each discordant cell, then a Wald interval
        g, lo_ = (b + 1) / (n + 2), (c + 1) / (n + 2)
        mid = g - lo_
        half = NormalDist().inv_cdf((1 + confidence) / 2) * math.sqrt(max(0.0, g + lo_ - mid * mid) / (n + 2))
        lo, hi = max(-1.0, mid - half) * 100, min(1.0, mid + half) * 100
    return {"delta": 100.0 * (b - c) / n, "ci": [lo, hi], "p": mcnemar_p(b, c), "images": n, "gained": b,
            "lost": c, "distinguishable": not (lo <= 0 <= hi)}


def format_delta(delta: float | None, ci: list[float] | None = None, digits: int = 1) -> str:
    """'-1.3 [-2.1, -0.5]' — or with '~0' appended when the interval contains 0 (not distinguishable).

    >>> format_delta(-0.4, [-1.1, 0.3])
    '-0.4 [-1.1, +0.3] ~0'
    """
    if not isinstance(delta, (int, float)):
        return "-"
    s = f"{delta:+.{digits}f}"
    if ci and all(isinstance(v, (int, float)) for v in ci):
        lo, hi = ci
        s += f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"
        if lo <= 0 <= hi:
            s += " ~0"
    return s


def pack_correct(correct) -> str:
    """Per-image correctness as a compact hex string (8 images a byte), for JSON rows."""
    a = np.asarray(correct, dtype=bool).ravel()
    return f"{a.size}:" + np.packbits(a).tobytes().hex()


def unpack_correct(packed: str) -> np.ndarray:
    """The inverse of :func:`pack_correct`."""
    n, _, hx = packed.partition(":")
    return np.unpackbits(np.frombuffer(bytes.fromhex(hx), np.uint8))[: int(n)].astype(bool)
