"""The bench result as a terminal table, JSON and CSV, and reading a result JSON back.

Result dict (also the JSON file), keys:
  schema, created, edgelite, stem, environment{board, cpu, cores, machine, governor, governors,
  throttled{before, after: {value, now[], since_boot[]}} (a Pi with vcgencmd; else None), frequency_mhz, temperature_c, memory_mb, os, kernel, python, runtimes, edgelite, hostname, loadavg,
  time, warnings}, settings{formats, threads, runs, warmup, min_seconds, data, pipeline, isolated},
  targets[{path, kind, labels, input, data{source, images}}], rows[ROW], warnings[], remote (with --host)
ROW (keys in ROW_KEYS order): target, name, format, precision, threads, status, error, file, bytes,
  size_mb, load_ms, first_ms, latency_ms{n, mean, std, min, p50, p90, p99, max}, fps, peak_rss_mb,
  model_rss_mb, top1, images, top1_threads, top1_manifest, runtime, delegate,
  pipeline{source, frames, fps, stages{STAGE: summary}, samples_ms{total}} (with --pipeline), samples_ms[],
  then (with accuracy) correct (per-image hits, edgelite.stats.pack_correct), delta_top1 (points against the
  target's float row on the same images: `delta_reference`), delta_ci [lo, hi] (paired 95 %),
  delta_distinguishable

With a result from `edgelite.bench.run.bench` (skipped as a doctest: it needs a bundle):

    >>> print(format_table(result))                                      # doctest: +SKIP
    >>> write_json(result, "out.json"); write_csv(result, "out.csv")     # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from edgelite.bench.errors import BenchUsageError
from edgelite.device.pipeline import TIMINGS as PIPELINE_STAGES  # the loop's stages + total
from edgelite.stats import format_delta, paired_delta, unpack_correct

SCHEMA = "edgelite.bench/1"
CSV_COLUMNS = ["target", "name", "format", "precision", "threads", "status", "size_mb", "bytes", "top1", "images",
               "delta_top1", "delta_ci_lo", "delta_ci_hi",
               "load_ms", "first_ms", "p50", "p90", "p99", "mean", "std", "min", "max", "n", "fps", "peak_rss_mb",
               "model_rss_mb", "runtime", "delegate", "error"]

ROW_KEYS = ("target", "name", "format", "precision", "threads", "status", "error", "file", "bytes", "size_mb",
            "load_ms", "first_ms", "latency_ms", "fps", "peak_rss_mb", "model_rss_mb", "top1", "images",
            "top1_threads", "top1_manifest", "runtime", "delegate", "pipeline", "samples_ms")


def ordered_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with the ROW_KEYS first, in that order (the JSON and the tests rely on it)."""
    out = {k: row.get(k) for k in ROW_KEYS}
    out.update({k: v for k, v in row.items() if k not in out})
    return out


#: printed under the table when a row has a Δ (delta_legend says against what)
DELTA_LEGEND = ("Δ top-1: points against {against} on the same images, with its paired 95 % interval; "
                "~0 = not distinguishable from zero on this many images")
#: delta_reference of a Δ taken against the manifest's float Keras model (convert's per-image hits)
MANIFEST_FLOAT = "keras float (manifest)"


def float_reference(ref: Any, heldout) -> dict[str, Any] | None:
    """The manifest's float Keras reference as {model, images, top1, correct?} when it was scored on the
    bundle's held-out images (`heldout` = (images, labels)), else None. `correct` (per-image hits) is what
    convert writes now; an older manifest has only the top-1."""
    if not isinstance(ref, dict) or not isinstance(ref.get("top1"), (int, float)) or heldout is None:
        return None
    n = len(heldout[1])
    if ref.get("images") not in (None, n):
        return None
    out = {"model": MANIFEST_FLOAT, "images": n, "top1": float(ref["top1"])}
    if isinstance(ref.get("correct"), str) and unpack_correct(ref["correct"]).shape == (n,):
        out["correct"] = ref["correct"]
    return out


def add_deltas(result: dict[str, Any]) -> None:
    """Give every scored row its Δ top-1 against the float model: the manifest's float Keras reference when
    the rows scored the bundle's held-out images (paired with convert's per-image hits; a manifest without
    them gives the point value only), else the target's first fp32 row. Rows with neither get no Δ, never a
    Δ against themselves: an int8-only bench shows int8's drop, not +0.0."""
    refs = {t["path"]: t["reference"] for t in result.get("targets", []) if t.get("reference")}
    by_target: dict[str, list[dict[str, Any]]] = {}
    for r in result.get("rows", []):
        if r.get("correct"):
            by_target.setdefault(r["target"], []).append(r)
    for target, rows in by_target.items():
        manifest = refs.get(target)
        if manifest is not None:
            name, ref_correct, ref_top1 = MANIFEST_FLOAT, manifest.get("correct"), manifest["top1"]
        else:
            ref = next((r for r in rows if r.get("precision") == "fp32"), None)
            if ref is None:
                continue
            name, ref_correct, ref_top1 = ref["name"], ref["correct"], None
        ref_hits = unpack_correct(ref_correct) if ref_correct else None
        for r in rows:
            if ref_hits is None:  # an older manifest: the float top-1 on the same images, no per-image hits
                if r.get("top1") is not None:
                    r.update(delta_reference=name, delta_top1=round(100 * (r["top1"] - ref_top1), 4),
                             delta_ci=None, delta_distinguishable=None)
                continue
            hits = unpack_correct(r["correct"])
            if hits.shape != ref_hits.shape:
                continue
            d = paired_delta(hits, ref_hits)
            r.update(delta_reference=name, delta_top1=round(d["delta"], 4),
                     delta_ci=[round(v, 4) for v in d["ci"]], delta_distinguishable=d["distinguishable"])


def delta_legend(rows: list[dict[str, Any]]) -> str | None:
    """The line under the table saying what each Δ is against (None when no row has one)."""
    against = sorted({r["delta_reference"] for r in rows if r.get("delta_top1") is not None})
    if not against:
        return None
    no_ci = any(r.get("delta_top1") is not None and r.get("delta_ci") is None for r in rows)
    names = [("the float Keras model (" + ("its top-1 in the manifest" if no_ci else
                                            "convert's per-image results, in the manifest") + ")")
             if a == MANIFEST_FLOAT else f"the {a} row" for a in against]
    line = DELTA_LEGEND.format(against=" / ".join(names))
    if no_ci:
        line += ("\n  (no interval: this bundle's manifest predates per-image float results; "
                 "convert it again for the paired interval)")
    return line


def no_delta_note(result: dict[str, Any]) -> str | None:
    """Why scored rows have no Δ: no float reference for the images scored (--data, or a bare model file)."""
    if any(r.get("top1") is not None and r.get("delta_top1") is None for r in result.get("rows", [])):
        return ("Δ top-1 '-': no float reference for these images (the manifest's is for the bundle's "
                "held-out split); add fp32 to --formats")
    return None


# ---------------------------------------------------------------------------------------------- table
def _fmt(v, spec: str, none: str = "-") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    return format(v, spec)


def _ms(v) -> str:
    """Milliseconds with three significant digits below 100 ms (0.0482, 4.82, 48.2, 482)."""
    if v is None:
        return "-"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def format_table(result: dict[str, Any]) -> str:
    """The terminal table (Ultralytics style) plus the pipeline table, errors and warnings."""
    env = result.get("environment", {})
    rows = result.get("rows", [])
    multi = len({r["target"] for r in rows}) > 1
    where = env.get("board") or env.get("cpu") or "?"
    rts = env.get("runtimes", {})
    rt = ", ".join(f"{k} {v}" for k, v in rts.items() if k in ("ai_edge_litert", "tflite_runtime", "onnxruntime"))
    head = (f"edgelite bench on {where} ({env.get('machine', '?')}, {env.get('cores', '?')} cores, governor "
            f"{env.get('governor') or 'n/a'}; {rt or 'no runtime'})")
    if result.get("remote"):
        head += f"  via ssh {result['remote'].get('host')}"
    cols = (["Model"] if multi else []) + ["Format", "Threads", "Status", "Size (MB)", "Top-1", "Δ top-1 [95 % CI]",
                                           "p50 (ms)",
                                           "p90 (ms)", "mean (ms)", "FPS (1/mean)", "Load (ms)", "Peak RSS (MB)"]
    body = []
    for r in rows:
        lat = r.get("latency_ms") or {}
        cells = ([Path(r["target"]).name] if multi else []) + [
            r["name"], _fmt(r.get("threads"), "d"), r["status"], _fmt(r.get("size_mb"), ".2f"),
            _fmt(r.get("top1"), ".4f"), format_delta(r.get("delta_top1"), r.get("delta_ci")),
            _ms(lat.get("p50")), _ms(lat.get("p90")), _ms(lat.get("mean")),
            _fmt(r.get("fps"), ".1f"), _fmt(r.get("load_ms"), ".1f"), _fmt(r.get("peak_rss_mb"), ".0f")]
        body.append(cells)
    lines = [head, _grid(cols, body, left={cols.index(c) for c in ("Model", "Format", "Status") if c in cols})]
    for note in (delta_legend(rows), no_delta_note(result)):
        if note:
            lines.append(note)
    prow = [r for r in rows if r.get("pipeline")]
    if prow:
        pcols = ["Format", "Threads"] + [f"{s} p50" for s in PIPELINE_STAGES] + ["total p90", "FPS (1/mean total)"]
        pbody = []
        for r in prow:
            st = r["pipeline"]["stages"]
            pbody.append([r["name"], _fmt(r.get("threads"), "d")] + [_ms(st[s]["p50"]) for s in PIPELINE_STAGES]
                         + [_ms(st["total"]["p90"]), _fmt(r["pipeline"].get("fps"), ".1f")])
        lines.append(f"\npipeline on {prow[0]['pipeline']['source']} (ms per frame, "
                     f"{prow[0]['pipeline']['frames']} frames):")
        lines.append(_grid(pcols, pbody, left={0}))
    errs = [r for r in rows if r.get("error")]
    seen = set()
    for r in errs:
        key = (r["target"], r["name"], r["error"].split(" (as with")[0])
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"  {r['name']}: {r['status']}: {r['error']}")
    for w in result.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def _grid(cols: list[str], body: list[list[str]], left: set[int]) -> str:
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]

    def line(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(cols)] + [line(b) for b in body])


# ----------------------------------------------------------------------------------------- JSON, CSV
def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=1, default=_json_default) + "\n"


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def write_json(result: dict[str, Any], path: str | os.PathLike | IO[str]) -> None:
    if hasattr(path, "write"):
        path.write(to_json(result))
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(to_json(result))


def csv_columns(result: dict[str, Any]) -> list[str]:
    cols = list(CSV_COLUMNS)
    if any(r.get("pipeline") for r in result["rows"]):
        cols += [f"pipeline_{s}_{q}" for s in PIPELINE_STAGES for q in ("p50", "p90", "p99", "mean")]
        cols.append("pipeline_fps")
    return cols


def to_csv(result: dict[str, Any]) -> str:
    """One line per (format, threads) row; latency columns in ms."""
    buf = io.StringIO()
    cols = csv_columns(result)
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in result["rows"]:
        flat = {k: r.get(k) for k in CSV_COLUMNS}
        flat["delta_ci_lo"], flat["delta_ci_hi"] = r.get("delta_ci") or (None, None)
        lat = r.get("latency_ms") or {}
        for k in ("p50", "p90", "p99", "mean", "std", "min", "max", "n"):
            flat[k] = lat.get(k)
        p = r.get("pipeline")
        if p:
            for s in PIPELINE_STAGES:
                for q in ("p50", "p90", "p99", "mean"):
                    flat[f"pipeline_{s}_{q}"] = p["stages"][s][q]
            flat["pipeline_fps"] = p.get("fps")
        w.writerow({k: ("" if flat.get(k) is None else flat.get(k)) for k in cols})
    return buf.getvalue()


def write_csv(result: dict[str, Any], path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(to_csv(result))


def format_pick(pick: dict[str, Any]) -> str:
    """The decision line under `bench --pick`'s table: what `run --format auto` would run, and why."""
    never = f"; never run (failed at convert time): {', '.join(pick['never_run'])}" if pick.get("never_run") else ""
    return (f"pick: {pick.get('model')} x{pick.get('threads')} threads — {pick.get('why')} "
            f"(trial {pick.get('trial_s')} s){never}")


def check_result(data: Any, where: str = "result") -> None:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("rows"), list):
        raise BenchUsageError(f"{where} is not an edgelite bench result (schema {SCHEMA})")
