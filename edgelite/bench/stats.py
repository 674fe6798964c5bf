"""Row statuses and latency statistics of `edgelite bench`: shared by the runner, the worker process
and the pipeline timer, and importing nothing else from `edgelite.bench`.

Every row has a status — `ok`, `load failed`, `validation failed` (or the manifest's own
`export failed` / `skipped`) — so one broken format never hides the others.

Statistics: percentiles use linear interpolation between order statistics (numpy's default, the
"type 7" definition), std is the sample standard deviation (n-1), FPS is 1000 / mean ms of
back-to-back single-image invokes.
"""

from __future__ import annotations

import numpy as np

OK = "ok"
LOAD_FAILED = "load failed"
VALIDATION_FAILED = "validation failed"
STATUSES = (OK, LOAD_FAILED, VALIDATION_FAILED)

#: a row fails validation when its top-1 on the bundle's held-out split is this far below the top-1
#: `convert` recorded for the same file (a runtime or delegate computing something else).
TOP1_TOLERANCE = 0.05


def summarize(samples_ms) -> dict[str, float | int]:
    """n, mean, std (n-1), min, p50, p90, p99, max of latency samples in ms (rounded to 0.1 µs).

    >>> summarize(np.arange(1, 101))["p90"]
    90.1
    """
    x = np.asarray(samples_ms, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("no samples")
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    out = {
        "n": int(x.size),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "min": float(x.min()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(x.max()),
    }
    return {k: (v if k == "n" else round(v, 4)) for k, v in out.items()}


def top1_shortfall(top1: float | None, top1_manifest: float | None) -> str | None:
    """Why a row fails validation on accuracy, or None: its top-1 on the held-out split is more than
    TOP1_TOLERANCE below the top-1 `convert` measured for the same file.

    >>> top1_shortfall(0.80, 0.90)
    'top-1 0.800 on the held-out split is below the 0.900 measured at convert time (tolerance 0.05)'
    """
    if top1 is None or top1_manifest is None or top1 >= top1_manifest - TOP1_TOLERANCE:
        return None
    return (f"top-1 {top1:.3f} on the held-out split is below the {top1_manifest:.3f} measured at convert time "
            f"(tolerance {TOP1_TOLERANCE})")
