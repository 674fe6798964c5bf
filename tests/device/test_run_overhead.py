"""The per-frame work of the camera loop, made cheap for 1 ms models, still says exactly what it said:
the JSON line is `json.dumps(Result.to_dict())` character for character, and `top_k` keeps its order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgelite.device.pipeline import Prediction, Result
from edgelite.device.runtime import top_k


def _result(rng, labels, **kw) -> Result:
    preds = [Prediction(int(i), labels[i], float(rng.random())) for i in rng.permutation(len(labels))[:3]]
    base = dict(frame=int(rng.integers(0, 10**6)), source_frame=int(rng.integers(0, 10**6)),
                timestamp=1.7e9 + float(rng.random()) * 1e6, top_k=preds, label=preds[0].label,
                score=preds[0].score, changed=bool(rng.integers(0, 2)), previous=labels[0],
                timings_ms={k: float(rng.random() * 10) for k in ("capture", "preprocess", "inference",
                                                                     "postprocess", "total")},
                fps=float(rng.random() * 2000), dropped=int(rng.integers(0, 5)))
    base.update(kw)
    return Result(**base)


@pytest.mark.parametrize("seed", range(5))
def test_json_line_is_json_dumps_of_to_dict(seed):
    rng = np.random.default_rng(seed)
    labels = ["cat", 'say "hi"', "naïve\\path", "日本", "tab\tnew\nline", "x" * 40]
    for kw in ({}, {"label": None, "score": 0.0, "top_k": []}, {"file": "/frames/00001.png", "changed": True},
               {"fps": 0.0, "previous": None, "changed": True}, {"fps": float("inf")}, {"score": 1e-12}):
        r = _result(rng, labels, **kw)
        assert r.to_json() == json.dumps(r.to_dict(), separators=(",", ":"))


def _reference_top_k(scores, k, threshold, labels):
    """The implementation before: a partition, then a stable sort of the k."""
    k = min(k, scores.shape[-1])
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return [Prediction(int(i), labels[i], float(scores[i])) for i in idx if scores[i] >= threshold]


@pytest.mark.parametrize("n", [2, 10, 1000])
def test_top_k_same_classes_scores_and_order(n):
    rng = np.random.default_rng(n)
    labels = [f"c{i}" for i in range(n)]
    for _ in range(50):
        s = rng.random(n).astype(np.float32)
        for k, thr in ((1, 0.0), (3, 0.0), (5, 0.5), (n + 3, 0.9)):
            got = top_k(s, k, thr, labels)
            assert got == _reference_top_k(s, k, thr, labels)
            assert all(type(p.id) is int and type(p.score) is float for p in got)
