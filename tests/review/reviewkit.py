"""Frames folders as a device leaves them: JPEGs named by `run --save-uncertain` (time, top-3 and scores),
written with the device's own `save_jpeg`, and a training folder with class sub-folders."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from edgelite.device.outputs.card import save_jpeg
from edgelite.device.outputs.uncertain import time_stamp

LABELS = ["cat", "dog", "bird"]
T0 = 1796071501.0  # 2026-11-30 20:45:01 UTC


def scene(seed: int, size=(120, 160)) -> np.ndarray:
    """A frame unlike any other seed's: coloured blocks on a random background (BGR)."""
    rng = np.random.default_rng(seed)
    img = np.repeat(np.repeat(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), size[0] // 6, 0), size[1] // 8, 1)
    return np.ascontiguousarray(img)


def uncertain_frames(folder: Path, n: int, *, still: int = 0, seed: int = 0, gap: float = 2.0) -> list[Path]:
    """`n` distinct frames, then `still` near-copies of one more scene (consecutive, a still camera), named as
    `--save-uncertain` names them; the first frame is the most uncertain (the smallest top-1 - top-2 margin)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n + still):
        base = scene(seed * 1000 + min(i, n))
        img = base if i < n else np.clip(base.astype(int) + rng.integers(-2, 3, base.shape), 0, 255).astype(np.uint8)
        top1 = 0.40 + 0.3 * i / (n + still)  # margins grow with i: frame 0 is the most uncertain
        top2 = 0.38 - 0.1 * i / (n + still)
        a, b, c = (LABELS[(i + k) % 3] for k in range(3))
        stem = f"{time_stamp(T0 + gap * i)}_{a}-{top1:.2f}_{b}-{top2:.2f}_{c}-0.02"
        paths.append(save_jpeg(folder, stem, img))
    return paths


def data_folder(path: Path, labels=LABELS) -> Path:
    for label in labels:
        (path / label).mkdir(parents=True, exist_ok=True)
    return path


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(url: str, body, headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
