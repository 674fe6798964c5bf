"""`review --run RUN`: score the frames with the run's own Keras model (the scores the order and the CSV
then use), cached in FRAMES_DIR/.review/scores-<run>.json by file key so a second start costs nothing.
Frames are decoded and resized as `edgelite adapt` and training decode them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from edgelite.review.errors import ReviewError
from edgelite.review.index import Index

BATCH = 64


def score_frames(index: Index, run_path: str | os.PathLike, *, progress=None) -> tuple[list[str], dict]:
    """(the run's labels, {frame id: [(label, score)] top-3}) for every readable frame of `index`."""
    from edgelite.errors import require_extra

    require_extra("train", ("tensorflow", "tf_keras"), what="--run")
    from edgelite.device.preprocess import resize
    from edgelite.train.data import decode_rgb
    from edgelite.train.errors import DataError, TrainError
    from edgelite.train.rundir import RunDir

    try:
        run = RunDir.load(run_path)
    except (TrainError, DataError) as e:
        raise ReviewError(f"--run: {e}") from None
    model_file = run.model_path
    tag = hashlib.sha1(f"{Path(run_path).resolve()}\0{model_file.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    cache = index.cache / f"scores-{tag}.json"
    try:
        cached = json.loads(cache.read_text())
    except (OSError, ValueError):
        cached = {}
    out: dict[int, list[tuple[str, float]]] = {}
    todo = []
    for f in index.frames:
        key = f"{f.rel}\0{f.size}\0{f.mtime_ns}"
        if key in cached:
            out[f.id] = [(lab, float(s)) for lab, s in cached[key]]
        elif f.id not in index.unreadable:
            todo.append((f, key))
    if todo:
        try:
            model = run.load_model()
        except (TrainError, DataError) as e:
            raise ReviewError(f"--run: {e}") from None
        size, interp = run.config.image_size, run.config.interpolation
        for start in range(0, len(todo), BATCH):
            chunk, x = [], []
            for f, key in todo[start:start + BATCH]:
                try:
                    x.append(resize(decode_rgb(index.root / f.rel), size, size, interp))
                    chunk.append((f, key))
                except ValueError:
                    index.unreadable.add(f.id)
            if not x:
                continue
            probs = model.predict(np.stack(x).astype(np.float32), batch_size=BATCH, verbose=0)
            for (f, key), p in zip(chunk, probs, strict=True):
                top = [(run.labels[int(i)], round(float(p[i]), 4)) for i in np.argsort(-p)[:3]]
                out[f.id] = top
                cached[key] = top
            if progress:
                progress(f"scored {min(start + BATCH, len(todo))} of {len(todo)} frames with {run.path}")
        try:
            tmp = cache.with_name(f".{cache.name}.tmp")
            tmp.write_text(json.dumps(cached))
            os.replace(tmp, cache)
        except OSError:
            pass
    return list(run.labels), out
