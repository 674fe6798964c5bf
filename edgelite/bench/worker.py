"""Measure ONE model at ONE thread count: the body of a benchmark row.

`edgelite bench` runs each row in a fresh `python -m edgelite.bench.worker` process, so that
peak resident memory belongs to that model alone and a model that crashes its runtime (a corrupt
flatbuffer can segfault an interpreter) takes down only its own row. The job arrives as JSON on
stdin; events go out as JSON lines on stdout ({"phase": ...}, {"progress": n}, finally {"row": {...}}).

`run_job(job, emit)` is the same code in-process (`bench(..., isolate=False)`, and the tests);
`run_isolated(job, on_event)` is the parent's side: it starts the worker and reads its events.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgelite.bench.stats import LOAD_FAILED, OK, VALIDATION_FAILED, summarize, top1_shortfall
from edgelite.device.timing import time_invokes
from edgelite.stats import pack_correct

Emit = Callable[[dict[str, Any]], None]

#: the keys a row copies from its job (what was measured, before any measurement)
JOB_KEYS = ("target", "name", "format", "precision", "threads", "file", "bytes")


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB.

    Linux: VmHWM of /proc/self/status, which starts afresh at exec — ru_maxrss would not: it keeps the
    parent's peak across fork + exec. Elsewhere ru_maxrss (KiB on Linux, bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def current_rss_mb() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def _ms(ns: int) -> float:
    return ns / 1e6


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def job_row(job: dict[str, Any], status: str = OK, error: str | None = None) -> dict[str, Any]:
    """A row for `job` with a status and no measurement yet (top-1 unknown, no images scored)."""
    row: dict[str, Any] = {k: job.get(k) for k in JOB_KEYS}
    row.update(status=status, error=error, top1=None, images=0)
    return row


def _sensor_job(job: dict[str, Any], row: dict[str, Any], emit: Emit) -> dict[str, Any]:
    """`bench BUNDLE --formats imx500 --pipeline imx500` on the Pi: the camera loop on the AI Camera; the
    latency is the sensor's own inference time, from each frame's metadata (picamera2's get_kpi_info)."""
    from edgelite.bench.pipeline import time_pipeline
    from edgelite.device.sources.imx500 import PACKAGE_HINT, SensorModel, network_file

    cfg, expect = job.get("pipeline") or {}, job.get("expect") or {}
    network = network_file(Path(job["file"]).parent)
    if cfg.get("source") != "imx500" or not expect:
        row.update(status=LOAD_FAILED, error="imx500 runs on the AI Camera's sensor: bench the bundle with "
                                             "--formats imx500 --pipeline imx500 on the Pi")
        return row
    if not network.is_file():
        row.update(status=LOAD_FAILED, error=f"{network} is missing: {PACKAGE_HINT}")
        return row
    model = SensorModel(network, expect["height"], expect["width"], expect["classes"])
    row.update(runtime=model.runtime, delegate=model.delegate)
    try:
        row["pipeline"] = time_pipeline(model, {**cfg, "network": str(network)}, tick=lambda: emit({"progress": 1}))
    except Exception as e:  # no camera, no picamera2: the row says it
        row.update(status=VALIDATION_FAILED, error=_one_line(e))
        return row
    row["latency_ms"] = row["pipeline"]["stages"]["inference"]
    row["fps"] = row["pipeline"]["fps"]
    return row


def run_job(job: dict[str, Any], emit: Emit | None = None) -> dict[str, Any]:
    """Load the model, time load / first inference / warm-up / timed runs, score top-1, time the pipeline.

    Never raises for a bad model: the returned row carries the status and the error.
    """
    from edgelite.device.runtime import load_model

    emit = emit or (lambda _event: None)
    row = job_row(job)
    row["top1_manifest"] = job.get("top1_manifest")
    if job["format"] == "imx500":  # the AI Camera's sensor runs it: only the camera loop can time it
        return _sensor_job(job, row, emit)
    rss_before = current_rss_mb()

    t0 = time.perf_counter_ns()
    try:
        model = load_model(job["file"], fmt=job["format"], num_threads=job.get("threads"))
    except Exception as e:  # ModelLoadError, or whatever a runtime raises on a broken file: the row says it
        row.update(status=LOAD_FAILED, error=_one_line(e), peak_rss_mb=round(peak_rss_mb(), 1))
        return row
    row["load_ms"] = round(_ms(time.perf_counter_ns() - t0), 3)
    row["runtime"] = getattr(model, "runtime", None)
    row["delegate"] = getattr(model, "delegate", None)
    emit({"phase": "loaded"})

    problems: list[str] = []
    h, w = model.input_height, model.input_width
    expect = job.get("expect") or {}
    if expect.get("height") and (expect["height"], expect["width"]) != (h, w):
        problems.append(f"model takes {h}x{w}, the bundle says {expect['height']}x{expect['width']}")
    if expect.get("classes") and expect["classes"] != model.num_classes:
        problems.append(f"model outputs {model.num_classes} classes, the bundle has {expect['classes']} labels")

    images = np.load(job["images"]) if job.get("images") else None
    labels = np.load(job["labels"]) if job.get("labels") else None
    if job.get("data") and images is None and job.get("accuracy"):
        from edgelite.bench.data import load_data
        from edgelite.bundle import InputSpec

        try:
            images, labels, _, _ = load_data(job["data"], InputSpec(height=h, width=w), job.get("data_labels"))
        except Exception as e:  # bad --data for this model: latency is still measured, on noise
            problems.append(f"--data: {_one_line(e)}")
    if images is None or images.shape[1:3] != (h, w):
        # no data, or data for another input size: time on seeded noise so latency is still measured
        images = np.random.default_rng(0).integers(0, 256, (8, h, w, 3), dtype=np.uint8)
        labels = None
    n_img = len(images)

    done = 0
    last_emit = [time.monotonic()]

    def tick(k: int = 1) -> None:
        nonlocal done
        done += k
        now = time.monotonic()
        if now - last_emit[0] > 0.1:
            last_emit[0] = now
            emit({"progress": done})

    try:
        model.set_input(images[0])
        t = time.perf_counter_ns()
        model.invoke()
        row["first_ms"] = round(_ms(time.perf_counter_ns() - t), 3)
        if not np.all(np.isfinite(model.scores())):
            problems.append("non-finite scores on the first image")

        for i in range(int(job.get("warmup", 0))):
            model.set_input(images[i % n_img])
            model.invoke()
            tick()

        samples = time_invokes(model, images, runs=int(job.get("runs", 100)),
                               min_seconds=float(job.get("min_seconds") or 0.0), tick=tick)
        ms = np.asarray(samples, dtype=np.float64) / 1e6
        row["latency_ms"] = summarize(ms)
        row["fps"] = round(1000.0 / row["latency_ms"]["mean"], 2) if row["latency_ms"]["mean"] > 0 else None
        row["samples_ms"] = [round(float(x), 4) for x in ms]

        if job.get("accuracy") and labels is not None:
            correct = np.zeros(len(labels), bool)
            finite = True
            for i, (img, y) in enumerate(zip(images, labels, strict=True)):
                s = model.classify(img)
                finite &= bool(np.all(np.isfinite(s)))
                correct[i] = np.argmax(s) == int(y)
                tick()
            row["top1"] = round(int(correct.sum()) / n_img, 6)
            row["correct"] = pack_correct(correct)  # per image, for the paired Δ interval (report.add_deltas)
            row["images"] = n_img
            if not finite:
                problems.append("non-finite scores on the data")
            shortfall = top1_shortfall(row["top1"], job.get("top1_manifest"))
            if shortfall:
                problems.append(shortfall)

        if job.get("pipeline"):
            from edgelite.bench.pipeline import time_pipeline

            row["pipeline"] = time_pipeline(model, job["pipeline"], tick=tick)
    except Exception as e:  # the model loaded but does not run: that is a validation failure of this row
        problems.append(f"{type(e).__name__}: {_one_line(e)}")

    if problems:
        row.update(status=VALIDATION_FAILED, error="; ".join(problems))
    row["peak_rss_mb"] = round(peak_rss_mb(), 1)
    after = current_rss_mb()
    if rss_before is not None and after is not None:
        row["model_rss_mb"] = round(max(0.0, row["peak_rss_mb"] - rss_before), 1)
    emit({"progress": done})
    return row


def run_isolated(job: dict[str, Any], on_event) -> dict[str, Any]:
    """Run one job in `python -m edgelite.bench.worker`; a crash becomes the row's error."""
    import edgelite

    env = dict(os.environ)
    pkg_root = str(Path(edgelite.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen([sys.executable, "-m", "edgelite.bench.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
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
        why = f"{signal.Signals(-rc).name}" if rc < 0 else why
    except ValueError:
        pass
    tail = f": {stderr[-1][:200]}" if stderr else ""
    return job_row(job, VALIDATION_FAILED if loaded else LOAD_FAILED,
                   f"the runtime crashed ({why}) while {'running' if loaded else 'loading'} the model{tail}")


def main() -> int:
    job = json.loads(sys.stdin.read())

    def emit(event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    row = run_job(job, emit)
    for k, v in list(row.items()):  # JSON has no NaN
        if isinstance(v, float) and not math.isfinite(v):
            row[k] = None
    emit({"row": row})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
