"""Bench figures drawn with OpenCV (the device has no matplotlib): one PNG with

* latency distribution per format × threads — every timed invoke as a dot, box = p25..p75,
  whiskers = p1..p99, bar = p50 (log scale when latencies span more than a decade);
* top-1 vs p50 latency, marker area proportional to the model's size in MB;
* with `--pipeline`, p50 time per stage of the camera loop as stacked bars.

With a result from `edgelite.bench.run.bench` (skipped as a doctest: it needs a bundle):

    >>> plot_result(result, "bench.png")                    # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgelite.device.pipeline import STAGES

FONT = cv2.FONT_HERSHEY_SIMPLEX
# matplotlib's tab10, as BGR
PALETTE = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
           (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23)]
INK, GRID, MUTED = (30, 30, 30), (225, 225, 225), (110, 110, 110)
STAGE_COLOURS = dict(zip(STAGES, PALETTE, strict=False))  # the loop's stages, in order


def _text(img, s, org, scale=0.45, color=INK, thick=1, anchor="left"):
    (w, h), _ = cv2.getTextSize(s, FONT, scale, thick)
    x, y = org
    if anchor == "right":
        x -= w
    elif anchor == "center":
        x -= w // 2
    cv2.putText(img, s, (int(x), int(y)), FONT, scale, color, thick, cv2.LINE_AA)
    return w, h


def _vtext(img, s, center, scale=0.5, color=INK):
    """Text rotated 90° counter-clockwise (a y-axis label)."""
    (w, h), base = cv2.getTextSize(s, FONT, scale, 1)
    tile = np.full((h + base + 4, w + 4, 3), 255, np.uint8)
    cv2.putText(tile, s, (2, h + 2), FONT, scale, color, 1, cv2.LINE_AA)
    tile = cv2.rotate(tile, cv2.ROTATE_90_COUNTERCLOCKWISE)
    th, tw = tile.shape[:2]
    x0, y0 = int(center[0] - tw // 2), int(center[1] - th // 2)
    if x0 < 0 or y0 < 0 or y0 + th > img.shape[0] or x0 + tw > img.shape[1]:
        return
    region = img[y0:y0 + th, x0:x0 + tw]
    np.minimum(region, tile, out=region)


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """About n round tick values (1, 2, 2.5, 5 × 10^k steps) covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, n - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v <= hi + step * 1e-9:
        if v >= lo - step * 1e-9:
            ticks.append(round(v, 10))
        v += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade inside [lo, hi] (every integer multiple when that gives too few)."""
    out: list[float] = []
    for mults in ((1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        out = [m * 10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
               for m in mults if lo <= m * 10 ** e <= hi]
        if len(out) >= 3:
            break
    return out


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


class Axes:
    """A plotting rectangle with a data -> pixel mapping (linear or log x), ticks, grid and labels."""

    def __init__(self, img, box, xlim, ylim, *, xlog=False):
        self.img, (self.x0, self.y0, self.x1, self.y1) = img, box
        self.xlog = xlog
        self.xlim, self.ylim = xlim, ylim

    def _fx(self, v):
        lo, hi = self.xlim
        if self.xlog:
            v, lo, hi = math.log10(max(v, 1e-12)), math.log10(lo), math.log10(hi)
        return self.x0 + (v - lo) / (hi - lo) * (self.x1 - self.x0)

    def _fy(self, v):
        lo, hi = self.ylim
        return self.y1 - (v - lo) / (hi - lo) * (self.y1 - self.y0)

    def px(self, x, y):
        return int(round(self._fx(x))), int(round(self._fy(y)))

    def frame(self, title, xlabel, ylabel=None, xticks=None, yticks=None, ytick_labels=None):
        img = self.img
        if xticks:
            for t in xticks:
                x = int(round(self._fx(t)))
                cv2.line(img, (x, self.y0), (x, self.y1), GRID, 1)
                cv2.line(img, (x, self.y1), (x, self.y1 + 5), INK, 1)
                _text(img, _tick_label(t), (x, self.y1 + 20), 0.42, anchor="center")
        if yticks:
            for i, t in enumerate(yticks):
                y = int(round(self._fy(t)))
                cv2.line(img, (self.x0, y), (self.x1, y), GRID, 1)
                cv2.line(img, (self.x0 - 5, y), (self.x0, y), INK, 1)
                label = ytick_labels[i] if ytick_labels else _tick_label(t)
                _text(img, label, (self.x0 - 9, y + 5), 0.42, anchor="right")
        cv2.rectangle(img, (self.x0, self.y0), (self.x1, self.y1), INK, 1)
        _text(img, title, ((self.x0 + self.x1) // 2, self.y0 - 14), 0.58, thick=1, anchor="center")
        _text(img, xlabel, ((self.x0 + self.x1) // 2, self.y1 + 42), 0.5, anchor="center")
        if ylabel:
            _vtext(img, ylabel, (self.x0 - 62, (self.y0 + self.y1) // 2))


def _key(r: dict[str, Any], multi: bool) -> str:
    """'int8', or 'demo/int8' when several bundles are plotted (a bare model file is its own name)."""
    stem = Path(r["target"]).stem
    return f"{stem}/{r['name']}" if multi and stem != r["name"] else r["name"]


def _row_label(r: dict[str, Any], multi: bool) -> str:
    t = f" t{r['threads']}" if r.get("threads") is not None else ""
    return f"{_key(r, multi)}{t}"


def _xrange(values: list[float]) -> tuple[tuple[float, float], bool]:
    lo, hi = min(values), max(values)
    lo = max(lo, 1e-3)
    if hi / lo > 10:
        return (lo * 0.8, hi * 1.25), True
    pad = (hi - lo) * 0.08 or hi * 0.1 or 1.0
    return (max(0.0, lo - pad), hi + pad), False


def plot_result(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Draw the bench figure for `result` (the dict from `bench()` or a loaded JSON) into a PNG."""
    rows = [r for r in result.get("rows", []) if r.get("latency_ms")]
    failed = [r for r in result.get("rows", []) if not r.get("latency_ms")]
    multi = len({r["target"] for r in result.get("rows", [])}) > 1
    names = list(dict.fromkeys(_key(r, multi) for r in result.get("rows", [])))
    colour = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}

    def col(r):
        return colour[_key(r, multi)]

    prow = [r for r in rows if r.get("pipeline")]
    row_h = 30
    lat_h = max(260, row_h * len(rows) + 40)
    W = 1500
    top = 96
    H = top + lat_h + 110 + (max(200, row_h * len(prow) + 40) + 120 if prow else 0) + 40
    img = np.full((H, W, 3), 255, np.uint8)

    env = result.get("environment", {})
    where = env.get("board") or env.get("cpu") or "?"
    rts = env.get("runtimes", {})
    rt = ", ".join(f"{k} {v}" for k, v in rts.items() if k in ("ai_edge_litert", "tflite_runtime", "onnxruntime"))
    _text(img, f"edgelite bench - {where} ({env.get('machine', '?')}, {env.get('cores', '?')} cores, "
               f"governor {env.get('governor') or 'n/a'})", (24, 32), 0.68)
    s = result.get("settings", {})
    remote = f"   via ssh {result['remote']['host']}" if result.get("remote") else ""
    _text(img, f"{rt}   runs {s.get('runs')}, warm-up {s.get('warmup')}   {result.get('created', '')}{remote}",
          (24, 58), 0.45, MUTED)
    if failed:
        fl = ", ".join(f"{_row_label(r, multi)}: {r['status']}" for r in failed)
        _text(img, ("not plotted - " + fl)[:190], (24, 80), 0.42, (40, 39, 214))

    if not rows:
        _text(img, "no row produced latencies (see the table for the errors)", (24, top + 40), 0.6)
        return _save(img[: top + 80], path)

    # ---------------------------------------------------------------- latency distribution
    all_ms = [v for r in rows for v in (r.get("samples_ms") or [r["latency_ms"]["p50"]])]
    xlim, xlog = _xrange([min(all_ms), max(all_ms)])
    ax = Axes(img, (170, top + 24, 780, top + 24 + lat_h - 40), xlim, (len(rows) - 0.5, -0.5), xlog=xlog)
    ax.frame("Latency per invoke" + (" (log scale)" if xlog else ""), "milliseconds per image",
             xticks=log_ticks(*xlim) if xlog else nice_ticks(*xlim))
    rng = np.random.default_rng(0)
    for i, r in enumerate(rows):
        c = col(r)
        samples = np.asarray(r.get("samples_ms") or [], dtype=np.float64)
        _text(img, _row_label(r, multi), (ax.x0 - 10, ax.px(xlim[0], i)[1] + 5), 0.45, anchor="right")
        if samples.size:
            light = tuple(int(v + (255 - v) * 0.55) for v in c)
            for v, j in zip(samples, rng.uniform(-0.3, 0.3, samples.size), strict=True):
                cv2.circle(img, ax.px(float(np.clip(v, *xlim)), i + j), 2, light, -1, cv2.LINE_AA)
            p1, p25, p75, p99 = np.percentile(samples, [1, 25, 75, 99])
        else:
            lat = r["latency_ms"]
            p1, p25, p75, p99 = lat["min"], lat["p50"], lat["p50"], lat["p99"]
        y = ax.px(xlim[0], i)[1]
        cv2.line(img, (ax.px(p1, i)[0], y), (ax.px(p99, i)[0], y), c, 2, cv2.LINE_AA)
        cv2.rectangle(img, (ax.px(p25, i)[0], y - 8), (ax.px(p75, i)[0], y + 8), c, 2, cv2.LINE_AA)
        xm = ax.px(r["latency_ms"]["p50"], i)[0]
        cv2.line(img, (xm, y - 11), (xm, y + 11), INK, 3, cv2.LINE_AA)
    ly = ax.y1 + 62
    _text(img, "dots: every timed invoke   box: p25-p75   whiskers: p1-p99   black bar: p50", (ax.x0, ly), 0.42, MUTED)

    # ---------------------------------------------------------------- accuracy vs p50
    acc = [r for r in rows if r.get("top1") is not None]
    bx = (920, top + 24, 1460, top + 24 + lat_h - 40)
    if not acc:
        cv2.rectangle(img, bx[:2], bx[2:], GRID, 1)
        _text(img, "Top-1 vs p50 latency", ((bx[0] + bx[2]) // 2, bx[1] - 14), 0.58, anchor="center")
        _text(img, "no accuracy: no held-out split in the bundle and no --data",
              ((bx[0] + bx[2]) // 2, (bx[1] + bx[3]) // 2), 0.45, MUTED, anchor="center")
    else:
        p50s = [r["latency_ms"]["p50"] for r in acc]
        axlim, axlog = _xrange(p50s)
        tops = [100 * r["top1"] for r in acc]
        ylo, yhi = min(tops), max(tops)
        pad = max(2.0, (yhi - ylo) * 0.15)
        ylim = (max(0.0, ylo - pad), min(100.0, yhi + pad) if yhi + pad <= 100 else yhi + pad)
        ax2 = Axes(img, bx, axlim, ylim, xlog=axlog)
        ax2.frame("Top-1 vs p50 latency (marker area ~ size in MB)", "p50 milliseconds per image", "top-1 (%)",
                  xticks=log_ticks(*axlim) if axlog else nice_ticks(*axlim), yticks=nice_ticks(*ylim, n=6))
        mbs = [r.get("size_mb") or 0.0 for r in acc]
        mb_max = max(mbs) or 1.0

        def radius(mb):
            return int(round(5 + 19 * math.sqrt(max(mb, 0.0) / mb_max)))

        for r, t1 in sorted(zip(acc, tops, strict=True), key=lambda z: -(z[0].get("size_mb") or 0)):
            p = ax2.px(r["latency_ms"]["p50"], t1)
            cv2.circle(img, p, radius(r.get("size_mb") or 0.0), col(r), -1, cv2.LINE_AA)
            cv2.circle(img, p, radius(r.get("size_mb") or 0.0), INK, 1, cv2.LINE_AA)
        marks = [(*ax2.px(r["latency_ms"]["p50"], t1), radius(r.get("size_mb") or 0.0)) for r, t1 in zip(acc, tops,
                                                                                                      strict=True)]
        boxes: list[tuple[int, int, int, int]] = []
        for r, (x, y, rr) in zip(acc, marks, strict=True):
            label = _row_label(r, multi)  # the format too: a bare "t2" could belong to any marker near it
            _label_clear_of(img, label, (x, y, rr), marks, boxes, bx)
        # legend: colours, then the smallest and largest file sizes plotted (sizes a file has)
        lx, ly = bx[0], bx[3] + 62
        for n in names:
            if not any(_key(r, multi) == n for r in acc):
                continue
            cv2.circle(img, (lx + 6, ly - 5), 6, colour[n], -1, cv2.LINE_AA)
            w, _ = _text(img, n, (lx + 16, ly), 0.45)
            lx += w + 34
            if lx > bx[2] - 60:
                lx, ly = bx[0], ly + 22
        ly += 30
        lx = bx[0]
        _text(img, "size:", (lx, ly + 4), 0.45)
        lx += 50
        for mb in legend_sizes(mbs):
            rr = radius(mb)
            cv2.circle(img, (lx + rr, ly), rr, (200, 200, 200), -1, cv2.LINE_AA)
            cv2.circle(img, (lx + rr, ly), rr, INK, 1, cv2.LINE_AA)
            w, _ = _text(img, f"{mb:.3g} MB", (lx + 2 * rr + 6, ly + 5), 0.42)
            lx += 2 * rr + w + 28
        _text(img, "labels: format and threads", (lx + 10, ly + 5), 0.42, MUTED)

    # ---------------------------------------------------------------- pipeline stages
    if prow:
        y0 = top + lat_h + 150
        ph = max(200, row_h * len(prow) + 40)
        totals = [sum(r["pipeline"]["stages"][s]["p50"] for s in STAGE_COLOURS) for r in prow]
        pxlim = (0.0, max(totals) * 1.08 or 1.0)
        ax3 = Axes(img, (170, y0, 1100, y0 + ph - 40), pxlim, (len(prow) - 0.5, -0.5))
        ax3.frame(f"Camera pipeline on {Path(str(prow[0]['pipeline']['source'])).name}: p50 per stage",
                  "milliseconds per frame", xticks=nice_ticks(*pxlim))
        for i, r in enumerate(prow):
            y = ax3.px(0, i)[1]
            _text(img, _row_label(r, multi), (ax3.x0 - 10, y + 5), 0.45, anchor="right")
            acc_ms = 0.0
            for s, c in STAGE_COLOURS.items():
                v = r["pipeline"]["stages"][s]["p50"]
                cv2.rectangle(img, (ax3.px(acc_ms, i)[0], y - 9), (ax3.px(acc_ms + v, i)[0], y + 9), c, -1)
                acc_ms += v
            fps = r["pipeline"].get("fps")
            tot = r["pipeline"]["stages"]["total"]["p50"]
            _text(img, f"total p50 {tot:.3g} ms" + (f"  {fps:.0f} FPS" if fps else ""),
                  (ax3.px(acc_ms, i)[0] + 8, y + 5), 0.42, MUTED)
        lx, ly = 1130, y0 + 20
        for s, c in STAGE_COLOURS.items():
            cv2.rectangle(img, (lx, ly - 10), (lx + 14, ly + 2), c, -1)
            _text(img, s, (lx + 22, ly), 0.45)
            ly += 24
    return _save(img, path)


def legend_sizes(mbs: list[float]) -> list[float]:
    """The marker sizes the legend shows: the smallest and the largest file plotted (never a size no file has).

    >>> legend_sizes([13.5, 6.8, 3.97, 3.98])
    [3.97, 13.5]
    """
    sizes = [m for m in mbs if m and m > 0]
    return sorted({min(sizes), max(sizes)}) if sizes else [1.0]


def _label_clear_of(img, label: str, mark: tuple[int, int, int], marks: list[tuple[int, int, int]],
                    boxes: list[tuple[int, int, int, int]], frame: tuple[int, int, int, int]) -> None:
    """Write `label` beside its marker (x, y, radius) where it overlaps no other label, no marker and stays in
    `frame`: right, left, above, below, then further out; `boxes` collects the labels written."""
    (w, h), _ = cv2.getTextSize(label, FONT, 0.4, 1)
    x, y, rr = mark

    def free(b):
        x0, y0, x1, y1 = b
        if x0 < frame[0] + 2 or x1 > frame[2] - 2 or y0 < frame[1] + 2 or y1 > frame[3] - 2:
            return False
        if any(x0 < b1 and b0 < x1 and y0 < c1 and c0 < y1 for b0, c0, b1, c1 in boxes):
            return False
        # a marker overlaps the box when its centre is within its radius of the box's nearest point
        return all((max(x0, min(mx, x1)) - mx) ** 2 + (max(y0, min(my, y1)) - my) ** 2 > (mr + 1) ** 2
                   for mx, my, mr in marks)

    for step in range(8):
        d = rr + 4 + 10 * step
        for bx0, by1 in ((x + d, y + h // 2), (x - d - w, y + h // 2), (x - w // 2, y - d), (x - w // 2, y + d + h)):
            box = (bx0, by1 - h, bx0 + w, by1 + 2)
            if free(box):
                boxes.append(box)
                _text(img, label, (bx0, by1), 0.4, MUTED)
                return
    boxes.append((x + rr + 4, y - h // 2, x + rr + 4 + w, y + h // 2))
    _text(img, label, (x + rr + 4, y + h // 2), 0.4, MUTED)  # crowded: beside it anyway


def _save(img: np.ndarray, path: str | os.PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), img):
        raise OSError(f"cannot write {p} (is the suffix .png?)")
    return p
