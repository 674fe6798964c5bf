"""`edgelite bench`: latency, size, memory and accuracy per format × thread count, with where it ran.
(The example needs a converted bundle: skipped as a doctest.)

    >>> result = bench(["bundles/demo"], threads=[1, 4], runs=200)      # doctest: +SKIP
    >>> print(format_table(result))            # edgelite.bench.report   # doctest: +SKIP

This module is the orchestration: one job per (model, threads), a progress bar (the options are
`edgelite.bench.options`). Each row runs in its own worker process (`edgelite.bench.worker`): memory
is per model, and a file that crashes its runtime fails only its own row. Only `invoke()` is timed; `--pipeline` times the whole loop.

The pieces: `targets` (what to bench), `data` (--data and the held-out split), `worker` (one row),
`pipeline` (the camera loop's stages), `stats` (statuses, percentiles), `report` (table, JSON, CSV and
the result's keys), `env` (where it ran), `plot` (the figure), `remote` (--host).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from edgelite.bench.data import load_data
from edgelite.bench.errors import BenchUsageError
from edgelite.bench.options import (  # noqa: F401  (parse_*, default_threads: this module's API before options.py)
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    BenchOptions,
    default_threads,
    parse_formats,
    parse_threads,
    threads_over_cores,
)
from edgelite.bench.report import SCHEMA, add_deltas, float_reference, ordered_row
from edgelite.bench.stats import LOAD_FAILED, OK, VALIDATION_FAILED, top1_shortfall
from edgelite.bench.targets import ModelSpec, Target, resolve_targets
from edgelite.bench.worker import job_row, run_isolated, run_job
from edgelite.formats import SENSOR_FORMATS


# ------------------------------------------------------------------------------------------ progress
class Progress:
    """A one-line progress bar on stderr: `[#####-----] 45%  int8 t2  row 3/12  0:07 left`."""

    def __init__(self, total: int, enabled: bool | None = None, stream: IO[str] | None = None, width: int = 28):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.width = max(1, total), width
        self.done, self.label = 0, ""
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, done: int | None = None, label: str | None = None, force: bool = False) -> None:
        if done is not None:
            self.done = min(self.total, done)
        if label is not None:
            self.label = label
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        frac = self.done / self.total
        fill = int(round(frac * self.width))
        elapsed = now - self.t0
        eta = f"{int(elapsed / frac - elapsed) // 60}:{int(elapsed / frac - elapsed) % 60:02d} left" if frac > 0.02 else ""
        line = f"\r[{'#' * fill}{'-' * (self.width - fill)}] {frac * 100:3.0f}%  {self.label}  {eta}"
        self.stream.write(line.ljust(78)[:110])
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.update(self.total, force=True)
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------------------------- bench
def _check_top1(row: dict[str, Any]) -> None:
    """A row whose top-1 was copied from another thread count's row gets that row's verdict too."""
    shortfall = top1_shortfall(row.get("top1"), row.get("top1_manifest"))
    if shortfall and row["status"] == OK:
        row["status"], row["error"] = VALIDATION_FAILED, shortfall


def _plan(targets: list[Target], tmp: Path, result: dict[str, Any], *, data: str | None, thread_list: list[int],
          runs: int, warmup: int, min_seconds: float, pipeline: str | None
          ) -> list[tuple[Target, ModelSpec, list[dict[str, Any]]]]:
    """One job per (model, threads), grouped by model; each target's data is saved once into `tmp` for the
    workers, and its description goes into result["targets"] (and a warning, for skipped images)."""
    jobs: list[tuple[Target, ModelSpec, list[dict[str, Any]]]] = []
    for ti, t in enumerate(targets):
        heldout = reference = None
        if t.kind == "bundle" and data is None:
            from edgelite.bundle import Bundle

            b = Bundle.load(t.path)
            heldout = b.heldout()
            reference = float_reference(b.info.get("reference"), heldout)
        images = labels = None
        if t.kind == "bundle":
            images, labels, source, skipped = load_data(data, t.spec, t.labels, heldout)
            if skipped:
                result["warnings"].append(f"top-1 measured without unreadable images: {source}")
        else:
            source = data or "random"
        info: dict[str, Any] = {"path": t.path, "kind": t.kind, "labels": t.labels,
                                "input": t.spec.to_dict() if t.spec is not None else None,
                                "data": {"source": source, "images": int(len(images)) if images is not None else None}}
        if reference is not None:
            info["reference"] = reference
        result["targets"].append(info)
        img_path = lab_path = None
        if images is not None:
            img_path, lab_path = tmp / f"t{ti}_images.npy", tmp / f"t{ti}_labels.npy"
            np.save(img_path, images)
            np.save(lab_path, labels)
        for ms in t.models:
            group = []
            # the sensor runs an imx500 network: the CPU's threads do not change its time, one row is enough
            for th in thread_list[:1] if ms.format in SENSOR_FORMATS else thread_list:
                job = {"target": t.path, "name": ms.name, "format": ms.format, "precision": ms.precision,
                       "threads": th, "file": ms.file, "bytes": ms.bytes, "runs": runs, "warmup": warmup,
                       "min_seconds": min_seconds, "images": str(img_path) if img_path else None,
                       "labels": str(lab_path) if lab_path else None,
                       "top1_manifest": ms.top1_manifest if (t.kind == "bundle" and data is None) else None,
                       "expect": ({"height": t.spec.height, "width": t.spec.width, "classes": len(t.labels)}
                                  if t.kind == "bundle" else None),
                       "n_images": int(len(images)) if images is not None else 0}
                if t.kind == "model" and data is not None:
                    # a bare file's input size is known only once loaded: the worker prepares the data
                    job["data"], job["data_labels"] = data, t.labels
                if pipeline is not None:
                    job["pipeline"] = {"source": pipeline, "frames": runs, "warmup": min(warmup, runs),
                                       "spec": (t.spec.to_dict() if t.spec is not None else None),
                                       "labels": t.labels}
                group.append(job)
            jobs.append((t, ms, group))
    return jobs


def _units(job: dict[str, Any], first: bool) -> int:
    """Progress units of a job: warm-up and timed invokes, the images scored (first thread count), frames."""
    n = job["warmup"] + job["runs"]
    if first:
        n += job.get("n_images") or 0
    if job.get("pipeline"):
        n += job["pipeline"]["frames"] + job["pipeline"]["warmup"]
    return n


def bench(paths: list[str], opts: BenchOptions | None = None, *, env_root: str = "/",
          **options: Any) -> dict[str, Any]:
    """Bench every (format, threads) of the given bundles / model files; returns the result dict.

    Options as `BenchOptions` (or as keywords of the same names): formats: 'all' or names/aliases
    (`edgelite.formats`); threads: '1,2,4' or a list (default: 1,2,4 up to the cores); runs: timed
    invokes (at least), min_seconds: keep timing until this much time passed; data: None = the
    bundle's held-out split, or a class-folder directory / .npz; pipeline: a source (video, folder,
    camera index, picamera2) to time the whole camera loop on; isolate: one process per row (per-model
    memory, crash isolation); progress: None = a bar when stderr is a terminal. Where the result is
    written (json, csv, plot, out) is the CLI's business.
    """
    from edgelite.bench.env import environment_stem, read_environment, throttled_after_run

    opts = dataclasses.replace(opts, **options) if opts is not None else BenchOptions(**options)
    opts.validate()
    fmt_list, thread_list = opts.format_list(), opts.thread_list()
    runs, warmup, min_seconds, data, pipeline, isolate = (opts.runs, opts.warmup, opts.min_seconds, opts.data,
                                                          opts.pipeline, opts.isolate)
    targets = resolve_targets(list(paths), fmt_list)
    if pipeline is not None:
        from edgelite.device.sources import describe_source

        if describe_source(pipeline) == "missing":
            raise BenchUsageError(f"--pipeline {pipeline!r} is not a camera index, /dev/video device, URL, "
                                  "video file, image folder or picamera2")

    env = read_environment(env_root)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "edgelite": env.get("edgelite"),
        "stem": environment_stem(env, thread_list),
        "environment": env,
        "settings": {"formats": fmt_list or "all", "threads": thread_list, "runs": runs, "warmup": warmup,
                     "min_seconds": min_seconds, "data": data, "pipeline": pipeline, "isolated": isolate},
        "targets": [],
        "rows": [],
        "warnings": list(env.get("warnings") or []),
    }
    if over := threads_over_cores(thread_list, env.get("cores")):
        result["warnings"].append(over)

    with tempfile.TemporaryDirectory(prefix="edgelite-bench-") as tmp:
        jobs = _plan(targets, Path(tmp), result, data=data, thread_list=thread_list, runs=runs, warmup=warmup,
                     min_seconds=min_seconds, pipeline=pipeline)
        total = sum(_units(j, i == 0) for _, ms, g in jobs if ms.status == OK for i, j in enumerate(g))
        bar = Progress(total, opts.progress)
        done_before = 0
        n_rows = sum(len(g) for _, _, g in jobs)
        row_i = 0
        for _t, ms, group in jobs:
            first_ok: dict[str, Any] | None = None
            first_fail: dict[str, Any] | None = None
            for k, job in enumerate(group):
                row_i += 1
                if ms.status != OK:
                    row = job_row(job, ms.status, ms.error)
                elif first_fail is not None:
                    row = {**first_fail, "threads": job["threads"],
                           "error": f"{first_fail['error']} (as with {first_fail['threads']} thread(s))"}
                else:
                    job["accuracy"] = first_ok is None
                    label = f"{ms.name} t{job['threads']}  row {row_i}/{n_rows}"
                    bar.update(done_before, label, force=True)
                    base = done_before

                    def on_event(ev, base=base, label=label):
                        if "progress" in ev:
                            bar.update(base + ev["progress"], label)

                    if isolate:
                        row = run_isolated(job, on_event)
                    else:
                        row = run_job(job, on_event)
                        row["peak_rss_mb"] = row["model_rss_mb"] = None  # one process: not per model
                    done_before += _units(job, k == 0)
                    if row["status"] == LOAD_FAILED and first_ok is None:
                        first_fail = row  # the other thread counts would fail the same way
                    elif first_ok is None and row.get("latency_ms"):
                        first_ok = row
                    elif first_ok is not None and row.get("top1") is None and first_ok.get("top1") is not None:
                        # accuracy does not depend on the thread count: measured once per format
                        row["top1"], row["images"] = first_ok["top1"], first_ok["images"]
                        row["correct"] = first_ok.get("correct")
                        row["top1_threads"] = first_ok["threads"]
                        _check_top1(row)
                row["size_mb"] = round(row["bytes"] / 1e6, 6) if row.get("bytes") else None
                row.setdefault("top1_manifest", job.get("top1_manifest"))
                result["rows"].append(ordered_row(row))
        bar.close()
    if warning := throttled_after_run(env):
        result["warnings"].append(warning)
    add_deltas(result)
    return result

