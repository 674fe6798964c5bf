"""The one invoke timer: `edgelite bench` rows and `run --format auto`'s trial (standard library + numpy).

Only `invoke()` is timed: writing the input is the pipeline's job (see `bench --pipeline`), and a bare
`interpreter.invoke()` loop must agree with this number (benchmarks/bench_demo.py checks it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def time_invokes(model, images: np.ndarray, *, runs: int, min_seconds: float = 0.0, max_seconds: float | None = None,
                 min_runs: int = 1, offset: int = 0, tick: Callable[[], None] | None = None) -> list[int]:
    """Nanoseconds of back-to-back `invoke()` calls on `images` (cycled from `offset`).

    At least `runs` calls (and until `min_seconds` passed) — unless `max_seconds` is over first, which
    stops it once `min_runs` calls were timed. `tick()` is called after each of the first `runs` calls.

        >>> class Fake:
        ...     def set_input(self, rgb): pass
        ...     def invoke(self): pass
        >>> len(time_invokes(Fake(), np.zeros((2, 4, 4, 3), np.uint8), runs=5))
        5
    """
    samples: list[int] = []
    n_img = len(images)
    min_ns = float(min_seconds) * 1e9
    max_ns = float(max_seconds) * 1e9 if max_seconds is not None else None
    start = time.perf_counter_ns()
    i = 0
    while i < runs or (time.perf_counter_ns() - start) < min_ns:
        if max_ns is not None and i >= min_runs and time.perf_counter_ns() - start >= max_ns:
            break
        model.set_input(images[(offset + i) % n_img])
        t = time.perf_counter_ns()
        model.invoke()
        samples.append(time.perf_counter_ns() - t)
        i += 1
        if tick is not None and i <= runs:
            tick()
    return samples
