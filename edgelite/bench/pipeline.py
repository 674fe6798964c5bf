"""`edgelite bench --pipeline SOURCE`: time the whole camera loop, stage by stage.

It drives the very objects `edgelite run` uses — `sources.open_source` (capture thread, read-ahead)
and `pipeline.Pipeline` (preprocess -> inference -> postprocess) — so the numbers are the loop's, not
a re-implementation's. `capture` is the time the loop waits for the next frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgelite.bench.stats import summarize
from edgelite.device.pipeline import TIMINGS, Pipeline


def time_pipeline(model, cfg: dict[str, Any], tick: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run `cfg["warmup"]` + `cfg["frames"]` frames of `cfg["source"]` through the loaded model.

    cfg: {"source": str, "frames": int, "warmup": int, "spec": InputSpec dict, "labels": [str, ...]}, and
    "network" (the .rpk) for the AI Camera's `imx500` source.
    Returns {"source", "frames", "stages": {stage: summary}, "fps", "samples_ms": {"total": [...]}}.
    Files and folders loop at their end so any frame count can be timed.
    """
    from edgelite.bundle import InputSpec
    from edgelite.device.errors import EndOfSource
    from edgelite.device.sources import open_source

    tick = tick or (lambda: None)
    spec = (InputSpec.from_dict(cfg["spec"]) if cfg.get("spec")
            else InputSpec(height=model.input_height, width=model.input_width))
    labels = list(cfg.get("labels") or [str(i) for i in range(model.num_classes)])
    frames, warmup = int(cfg.get("frames", 100)), int(cfg.get("warmup", 0))
    timeout = float(cfg.get("read_timeout", 10.0))
    pipe = Pipeline(model, spec, labels, top_k=min(3, model.num_classes))
    rows: list[dict[str, float]] = []
    # prepared exactly as `edgelite run` does (resize in the capture thread), so the stages are the loop's
    with open_source(cfg["source"], model_size=(spec.height, spec.width), loop=True, prepare=pipe.prepare,
                     network=cfg.get("network")) as src:
        while len(rows) < frames:
            t = time.perf_counter()
            try:
                frame = src.read(timeout=timeout)
            except EndOfSource:
                break
            if frame is None:
                raise TimeoutError(f"no frame from {cfg['source']} within {timeout:g} s")
            frame.capture_ms = (time.perf_counter() - t) * 1e3
            result = pipe.process(frame)
            if warmup > 0:
                warmup -= 1
            else:
                rows.append(result.timings_ms)
            tick()
    if not rows:
        raise RuntimeError(f"{cfg['source']} gave no frames")
    stages = {s: summarize(np.array([r[s] for r in rows], dtype=np.float64)) for s in TIMINGS}
    total = stages["total"]["mean"]
    return {
        "source": str(cfg["source"]),
        "frames": len(rows),
        "stages": stages,
        "fps": round(1000.0 / total, 2) if total > 0 else None,
        "samples_ms": {"total": [round(r["total"], 4) for r in rows]},
    }
