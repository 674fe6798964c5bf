"""`edgelite bench`: latency, size, memory and accuracy per format × thread count, with where it ran.

    >>> result = bench(["bundles/demo"], threads=[1, 4], runs=200)      # doctest: +SKIP
    >>> print(format_table(result))                                      # doctest: +SKIP
    >>> write_json(result, "out.json"); write_csv(result, "out.csv")     # doctest: +SKIP

Each row runs in its own worker process (`edgelite.bench.worker`): memory is per model, and a file that
crashes its runtime fails only its own row. Every row has a status — `ok`, `load failed`,
`validation failed` (or the manifest's own `export failed` / `skipped`) — so one broken format never
hides the others.

Statistics: percentiles use linear interpolation between order statistics (numpy's default, the
"type 7" definition), std is the sample standard deviation (n-1), FPS is 1000 / mean ms of
back-to-back single-image invokes. Only `invoke()` is timed; `--pipeline` times the whole loop.

Result dict (also the JSON file), keys:
  schema, created, edgelite, stem, environment{board, cpu, cores, machine, governor, governors,
  frequency_mhz, temperature_c, memory_mb, os, kernel, python, runtimes, edgelite, hostname, loadavg,
  time, warnings}, settings{formats, threads, runs, warmup, min_seconds, data, pipeline, isolated},
  targets[{path, kind, labels, input, data{source, images}}], rows[ROW], warnings[], remote (with --host)
ROW: target, name, format, precision, threads, status, error, file, bytes, size_mb, load_ms, first_ms,
  latency_ms{n, mean, std, min, p50, p90, p99, max}, fps, samples_ms[], peak_rss_mb, model_rss_mb,
  top1, images, top1_manifest, runtime, delegate, pipeline{source, frames, fps, stages{STAGE: summary},
  samples_ms{total}} (with --pipeline)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from edgelite.bench.worker import LOAD_FAILED, OK, TOP1_TOLERANCE, VALIDATION_FAILED, run_job
from edgelite.device.runtime import model_format

SCHEMA = "edgelite.bench/1"
STATUSES = (OK, LOAD_FAILED, VALIDATION_FAILED)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
DEFAULT_RUNS = 200
DEFAULT_WARMUP = 20


class BenchUsageError(Exception):
    """A bad bench option or input the user can fix (printed as one line by the CLI)."""

    exit_code = 2


# --------------------------------------------------------------------------------------- statistics
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


# ------------------------------------------------------------------------------------------ options
def default_threads(cores: int | None = None) -> list[int]:
    """1, 2, 4 up to the cores this process may use (a 4-core Pi: 1,2,4; a 2-core VM: 1,2)."""
    from edgelite.bench.env import cpu_cores

    cores = cores or cpu_cores()
    return [t for t in (1, 2, 4) if t <= cores] or [1]


def parse_threads(text: str | list[int] | None) -> list[int]:
    """'1,2,4' -> [1, 2, 4] (order kept, duplicates dropped)."""
    if text is None or text == "" or text == "auto":
        return default_threads()
    if isinstance(text, list | tuple):
        items = [str(t) for t in text]
    else:
        items = [t.strip() for t in str(text).split(",") if t.strip()]
    out: list[int] = []
    for t in items:
        if not t.isdigit() or int(t) < 1:
            raise BenchUsageError(f"--threads takes positive integers like 1,2,4; got {t!r}")
        if int(t) not in out:
            out.append(int(t))
    return out


def parse_formats(text: str | list[str] | None) -> list[str] | None:
    """'all' -> None (every model in the bundle); 'fp32,int8' -> ['fp32', 'int8'] checked against FORMATS."""
    from edgelite.bundle import FORMATS

    if text is None or text == "all" or text == ["all"]:
        return None
    items = text if isinstance(text, list | tuple) else [t.strip() for t in str(text).split(",") if t.strip()]
    unknown = [t for t in items if t not in FORMATS]
    if unknown:
        raise BenchUsageError(f"unknown format(s) {unknown} in --formats; choose from all, {', '.join(FORMATS)}")
    return list(dict.fromkeys(items))


# ------------------------------------------------------------------------------------------ targets
@dataclasses.dataclass
class ModelSpec:
    """One file to bench (or a manifest entry that cannot be benched, with its status)."""

    name: str
    file: str | None
    format: str
    precision: str
    bytes: int | None
    status: str = OK
    error: str | None = None
    top1_manifest: float | None = None


@dataclasses.dataclass
class Target:
    path: str
    kind: str  # bundle | model
    models: list[ModelSpec]
    spec: Any = None  # bundle InputSpec (None for a bare model file)
    labels: list[str] | None = None


def _guess_precision(stem: str) -> str:
    s = stem.lower()
    for p in ("int8", "fp16", "dynamic", "fp32"):
        if p in s:
            return p
    return "?"


def resolve_targets(paths: list[str], formats: list[str] | None = None) -> list[Target]:
    """Bundles (directories) and bare model files (.tflite / .onnx) -> what to bench, in order."""
    from edgelite.bundle import FORMATS, Bundle, BundleError, read_labels

    if not paths:
        raise BenchUsageError("give a bundle directory or a model file to bench")
    targets: list[Target] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            b = Bundle.load(p)
            by_name = {m.name: m for m in b.models}
            order = [n for n in FORMATS if n in by_name] + [n for n in by_name if n not in FORMATS]
            wanted = formats if formats is not None else order
            models: list[ModelSpec] = []
            for name in wanted:
                fmt, precision = FORMATS.get(name, ("tflite", "?"))
                e = by_name.get(name)
                if e is None:
                    models.append(ModelSpec(name, None, fmt, precision, None, LOAD_FAILED,
                                            f"bundle {p} has no {name!r} model; it has {b.available()}"))
                    continue
                top1 = e.metrics.get("top1") if isinstance(e.metrics, dict) else None
                spec = ModelSpec(name, None, e.format, e.precision, e.bytes, top1_manifest=top1)
                if e.status != OK or not e.path:
                    spec.status, spec.error = e.status if e.status != OK else LOAD_FAILED, e.error or "no file"
                else:
                    try:
                        spec.file = str(b.verified_path(e))
                    except BundleError as err:
                        spec.status, spec.error = LOAD_FAILED, str(err)
                models.append(spec)
            targets.append(Target(str(p), "bundle", models, spec=b.input, labels=list(b.labels)))
        elif p.is_file():
            fmt = model_format(p)
            if fmt is None:
                raise BenchUsageError(f"{p} is neither a .tflite nor an .onnx file nor a bundle directory")
            labels = read_labels(p.parent / "labels.txt") if (p.parent / "labels.txt").exists() else None
            ms = ModelSpec(p.stem, str(p), fmt, "fp32" if fmt == "onnx" else _guess_precision(p.stem), p.stat().st_size)
            targets.append(Target(str(p), "model", [ms], labels=labels))
        else:
            raise BenchUsageError(f"{p} does not exist; give a bundle directory or a .tflite/.onnx file")
    return targets


# --------------------------------------------------------------------------------------------- data
def read_image_folder(root: str | os.PathLike, labels: list[str] | None
                      ) -> tuple[list[np.ndarray], np.ndarray, list[str], list[str]]:
    """DIR/<class>/*.jpg -> (BGR images, label indices, labels, unreadable files skipped). Class names must be
    in `labels` when given; without labels, classes are the sorted folder names (Keras'
    image_dataset_from_directory order). A file that does not decode is skipped and listed, as in training."""
    import cv2

    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise BenchUsageError(f"--data {root} has no class folders; expected {root}/<class>/*.jpg")
    if labels is None:
        labels = classes
    unknown = [c for c in classes if c not in labels]
    if unknown:
        raise BenchUsageError(f"--data {root}: folders {unknown} are not labels of the model ({labels})")
    images: list[np.ndarray] = []
    ys: list[int] = []
    skipped: list[str] = []
    for c in classes:
        for f in sorted((root / c).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                skipped.append(f"{c}/{f.name}")
                continue
            images.append(img)
            ys.append(labels.index(c))
    if not images:
        raise BenchUsageError(f"--data {root} has no readable images ({', '.join(IMAGE_SUFFIXES)})"
                              + (f"; {len(skipped)} could not be decoded" if skipped else ""))
    return images, np.asarray(ys, dtype=np.int64), labels, skipped


def load_data(data: str | None, spec, labels: list[str] | None, heldout=None
              ) -> tuple[np.ndarray | None, np.ndarray | None, str, list[str]]:
    """Model-ready (N, H, W, 3) uint8 RGB images + label indices, a description of where they came from,
    and the unreadable files skipped (class/name).

    data: None (the bundle's held-out split, `heldout`), a folder of class sub-folders, or an .npz with
    `images` (RGB uint8) and `labels`. Images go through the same `prepare_*` path as `edgelite run`.
    """
    from edgelite.device.preprocess import prepare_bgr, prepare_rgb

    skipped: list[str] = []
    if data is None:
        if heldout is None:
            return None, None, "random", skipped
        x, y = heldout
        source = "heldout"
        rgb = list(x)
        bgr = None
    else:
        p = Path(data)
        if p.is_dir():
            bgr, y, _, skipped = read_image_folder(p, labels)
            rgb = None
        elif p.suffix == ".npz" and p.is_file():
            try:
                with np.load(p, allow_pickle=False) as z:
                    if "images" not in z or "labels" not in z:
                        raise BenchUsageError(f"--data {p} must hold arrays 'images' (N,H,W,3 RGB uint8) and 'labels'")
                    rgb, y = list(z["images"]), z["labels"]
            except (OSError, ValueError, zipfile.BadZipFile) as e:
                raise BenchUsageError(f"--data {p}: not a readable .npz of plain arrays ({str(e)[:120]})") from None
            bgr = None
        else:
            raise BenchUsageError(f"--data {p}: expected a folder of class folders or an .npz file")
        source = str(p)
        if skipped:  # named in the result's data source, so the table says what accuracy was measured on
            source += (f" ({len(skipped)} unreadable skipped: {', '.join(skipped[:5])}"
                       f"{', ...' if len(skipped) > 5 else ''})")
    if spec is None:
        return None, None, source, skipped
    out = np.empty((len(y), spec.height, spec.width, 3), np.uint8)
    for i in range(len(y)):
        if bgr is not None:
            prepare_bgr(bgr[i], spec, out=out[i])
        else:
            img = np.asarray(rgb[i])
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise BenchUsageError(f"{source}: images must be HxWx3 uint8 RGB, got {img.shape} {img.dtype}")
            prepare_rgb(img, spec, out=out[i])
    y = np.asarray(y, dtype=np.int64).ravel()
    if labels is not None and (y.min(initial=0) < 0 or y.max(initial=0) >= len(labels)):
        raise BenchUsageError(f"{source}: label indices outside 0..{len(labels) - 1}")
    return out, y, source, skipped


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
def _run_isolated(job: dict[str, Any], on_event) -> dict[str, Any]:
    """Run one job in `python -m edgelite.bench.worker`; a crash becomes the row's error."""
    import edgelite

    env = dict(os.environ)
    pkg_root = str(Path(edgelite.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen([sys.executable, "-m", "edgelite.bench.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    import threading

    err_chunks: list[str] = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(job))
    proc.stdin.close()
    row = None
    loaded = False
    for line in proc.stdout:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a runtime printing to stdout; not ours
        if "row" in event:
            row = event["row"]
        else:
            loaded |= event.get("phase") == "loaded"
            on_event(event)
    rc = proc.wait()
    reader.join(5)
    if row is not None:
        return row
    stderr = "".join(err_chunks).strip().splitlines()
    why = f"signal {-rc}" if rc < 0 else f"exit code {rc}"
    try:
        import signal

        why = f"{signal.Signals(-rc).name}" if rc < 0 else why
    except ValueError:
        pass
    tail = f": {stderr[-1][:200]}" if stderr else ""
    row = {k: job.get(k) for k in ("target", "name", "format", "precision", "threads", "file", "bytes")}
    row.update(status=VALIDATION_FAILED if loaded else LOAD_FAILED, top1=None, images=0,
               error=f"the runtime crashed ({why}) while {'running' if loaded else 'loading'} the model{tail}")
    return row


def _check_top1(row: dict[str, Any]) -> None:
    m, t = row.get("top1_manifest"), row.get("top1")
    if m is not None and t is not None and t < m - TOP1_TOLERANCE and row["status"] == OK:
        row["status"] = VALIDATION_FAILED
        row["error"] = (f"top-1 {t:.3f} on the held-out split is below the {m:.3f} measured at convert time "
                        f"(tolerance {TOP1_TOLERANCE})")


def bench(paths: list[str], *, formats: str | list[str] | None = None, threads: str | list[int] | None = None,
          runs: int = DEFAULT_RUNS, warmup: int = DEFAULT_WARMUP, min_seconds: float = 0.0, data: str | None = None,
          pipeline: str | None = None, isolate: bool = True, progress: bool | None = None,
          env_root: str = "/") -> dict[str, Any]:
    """Bench every (format, threads) of the given bundles / model files; returns the result dict.

    formats: 'all' / None or names from bundle.FORMATS; threads: '1,2,4' or a list (default: 1,2,4 up to
    the cores); runs: timed invokes (at least), min_seconds: keep timing until this much time passed;
    data: None = the bundle's held-out split, or a class-folder directory / .npz; pipeline: a source
    (video, folder, camera index, picamera2) to time the whole camera loop on; isolate: one process per
    row (per-model memory, crash isolation); progress: None = a bar when stderr is a terminal.
    """
    from edgelite.bench.env import environment_stem, read_environment

    if runs < 1:
        raise BenchUsageError("--runs must be at least 1")
    if warmup < 0 or min_seconds < 0:
        raise BenchUsageError("--warmup and --min-seconds cannot be negative")
    fmt_list = parse_formats(formats)
    thread_list = parse_threads(threads)
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

    with tempfile.TemporaryDirectory(prefix="edgelite-bench-") as tmp:
        jobs: list[tuple[Target, ModelSpec, list[dict[str, Any]]]] = []
        for ti, t in enumerate(targets):
            heldout = None
            if t.kind == "bundle" and data is None:
                from edgelite.bundle import Bundle

                heldout = Bundle.load(t.path).heldout()
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
            result["targets"].append(info)
            img_path = lab_path = None
            if images is not None:
                img_path, lab_path = Path(tmp) / f"t{ti}_images.npy", Path(tmp) / f"t{ti}_labels.npy"
                np.save(img_path, images)
                np.save(lab_path, labels)
            for ms in t.models:
                group = []
                for th in thread_list:
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

        def units(job: dict[str, Any], first: bool) -> int:
            n = job["warmup"] + job["runs"]
            if first:
                n += job.get("n_images") or 0
            if job.get("pipeline"):
                n += job["pipeline"]["frames"] + job["pipeline"]["warmup"]
            return n

        total = sum(units(j, i == 0) for _, ms, g in jobs if ms.status == OK for i, j in enumerate(g))
        bar = Progress(total, progress)
        done_before = 0
        n_rows = sum(len(g) for _, _, g in jobs)
        row_i = 0
        for _t, ms, group in jobs:
            first_ok: dict[str, Any] | None = None
            first_fail: dict[str, Any] | None = None
            for k, job in enumerate(group):
                row_i += 1
                if ms.status != OK:
                    row = _static_row(job, ms)
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
                        row = _run_isolated(job, on_event)
                    else:
                        row = run_job(job, on_event)
                        row["peak_rss_mb"] = row["model_rss_mb"] = None  # one process: not per model
                    done_before += units(job, k == 0)
                    if row["status"] == LOAD_FAILED and first_ok is None:
                        first_fail = row  # the other thread counts would fail the same way
                    elif first_ok is None and row.get("latency_ms"):
                        first_ok = row
                    elif first_ok is not None and row.get("top1") is None and first_ok.get("top1") is not None:
                        # accuracy does not depend on the thread count: measured once per format
                        row["top1"], row["images"] = first_ok["top1"], first_ok["images"]
                        row["top1_threads"] = first_ok["threads"]
                        _check_top1(row)
                row["size_mb"] = round(row["bytes"] / 1e6, 6) if row.get("bytes") else None
                row.setdefault("top1_manifest", job.get("top1_manifest"))
                result["rows"].append(_ordered_row(row))
        bar.close()
    return result


def _static_row(job: dict[str, Any], ms: ModelSpec) -> dict[str, Any]:
    row = {k: job.get(k) for k in ("target", "name", "format", "precision", "threads", "file", "bytes")}
    row.update(status=ms.status, error=ms.error, top1=None, images=0)
    return row


ROW_KEYS = ("target", "name", "format", "precision", "threads", "status", "error", "file", "bytes", "size_mb",
            "load_ms", "first_ms", "latency_ms", "fps", "peak_rss_mb", "model_rss_mb", "top1", "images",
            "top1_threads", "top1_manifest", "runtime", "delegate", "pipeline", "samples_ms")


def _ordered_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row.get(k) for k in ROW_KEYS}
    out.update({k: v for k, v in row.items() if k not in out})
    return out


# ------------------------------------------------------------------------------------------- outputs
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
    cols = (["Model"] if multi else []) + ["Format", "Threads", "Status", "Size (MB)", "Top-1", "p50 (ms)",
                                           "p90 (ms)", "FPS", "Load (ms)", "Peak RSS (MB)"]
    body = []
    for r in rows:
        lat = r.get("latency_ms") or {}
        cells = ([Path(r["target"]).name] if multi else []) + [
            r["name"], _fmt(r.get("threads"), "d"), r["status"], _fmt(r.get("size_mb"), ".2f"),
            _fmt(r.get("top1"), ".4f"), _ms(lat.get("p50")), _ms(lat.get("p90")),
            _fmt(r.get("fps"), ".1f"), _fmt(r.get("load_ms"), ".1f"), _fmt(r.get("peak_rss_mb"), ".0f")]
        body.append(cells)
    lines = [head, _grid(cols, body, left={cols.index(c) for c in ("Model", "Format", "Status") if c in cols})]
    prow = [r for r in rows if r.get("pipeline")]
    if prow:
        stages = ("capture", "preprocess", "inference", "postprocess", "total")
        pcols = ["Format", "Threads"] + [f"{s} p50" for s in stages] + ["total p90", "FPS"]
        pbody = []
        for r in prow:
            st = r["pipeline"]["stages"]
            pbody.append([r["name"], _fmt(r.get("threads"), "d")] + [_ms(st[s]["p50"]) for s in stages]
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


CSV_COLUMNS = ["target", "name", "format", "precision", "threads", "status", "size_mb", "bytes", "top1", "images",
               "load_ms", "first_ms", "p50", "p90", "p99", "mean", "std", "min", "max", "n", "fps", "peak_rss_mb",
               "model_rss_mb", "runtime", "delegate", "error"]
PIPELINE_STAGES = ("capture", "preprocess", "inference", "postprocess", "total")


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


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read a result JSON written by `write_json` (or fetched from a device)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BenchUsageError(f"cannot read bench result {path}: {e}") from None
    check_result(data, str(path))
    return data


def check_result(data: Any, where: str = "result") -> None:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("rows"), list):
        raise BenchUsageError(f"{where} is not an edgelite bench result (schema {SCHEMA})")
