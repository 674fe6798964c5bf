"""The camera loop of `edgelite run`: load the model once, open the source, classify frames until the
source ends, `--max-frames` is reached or a signal arrives; reopen a stalled live source with backoff.

Python API (the CLI is a thin wrapper over it)::

    >>> from edgelite.device import run
    >>> summary = run("bundle/", source="clip.avi", max_frames=100, json="results.jsonl")  # doctest: +SKIP
    >>> summary.exit_code, summary.frames, summary.fps, summary.stage_ms["inference"]      # doctest: +SKIP

Exit codes: 0 when the source ended, --max-frames was reached or SIGTERM/SIGINT stopped it;
2 for a user error (raised as an exception, the CLI prints it); 75 (EX_TEMPFAIL) when a live source stayed
lost after --max-reconnects reopen attempts, so that systemd's Restart= starts it again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgelite.bundle import Bundle, BundleError, InputSpec, read_labels
from edgelite.device.errors import EXIT_SOURCE_LOST, EndOfSource, RunError, SourceFailed, SourceUnavailable
from edgelite.device.frames import Frame
from edgelite.device.notify import Notifier
from edgelite.device.options import RunOptions
from edgelite.device.outputs import open_outputs
from edgelite.device.outputs.base import Output
from edgelite.device.outputs.text import silence_stdout
from edgelite.device.pick import load_picked
from edgelite.device.pipeline import TIMINGS, ModelOutput, Pipeline, Result
from edgelite.device.reporter import Reporter
from edgelite.device.runtime import Model, load_model
from edgelite.device.signals import stop_on_signals
from edgelite.device.sources import describe_source, open_source
from edgelite.device.sources.base import Source
from edgelite.device.sources.rtsp import redact_url, set_rtsp_transport
from edgelite.device.summary import RunSummary
from edgelite.device.workers import FramePool, can_split
from edgelite.formats import canonical, model_format
from edgelite.signature import check_deployed

log = logging.getLogger("edgelite.device")

HELDOUT_SOURCE = "heldout"
READ_SLICE = 0.2  # s: the longest the loop waits for a frame before it looks at stop/stall/watchdog
# the frames a file source may have queued for its outputs (each result holds its image for the preview):
# 64 small frames, 8 at 640x480; a slow `--json` reader must not grow the process by 64 full frames
PENDING_BYTES = 8 << 20


def pending_for(frame_bytes: int) -> int:
    """How many results of frames this size may wait for the reporting thread (2 to 64)."""
    return max(2, min(64, PENDING_BYTES // max(1, frame_bytes)))


@dataclasses.dataclass
class LoadedModel:
    model: Model  # runtime.TFLiteModel | runtime.ONNXModel, used only through the protocol
    spec: InputSpec
    labels: list[str]
    name: str  # bundle entry name (int8, fp32, ...) or the file name
    format: str  # tflite | edgetpu | onnx
    bundle: Bundle | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    pick: dict | None = None  # how the model was chosen (edgelite.device.pick.summary): /healthz, /metrics


def load(model_path: str | os.PathLike, opts: RunOptions | None = None) -> LoadedModel:
    """The model (a bundle directory, or a bare .tflite/.onnx file plus labels), loaded once, verified."""
    opts = opts or RunOptions()
    tpu = opts.edgetpu_device  # None = CPU, "" = the first Edge TPU, "usb:1" = that one
    p = Path(model_path)
    if p.is_file() and model_format(p) is not None:
        if opts.format not in (None, "auto"):
            raise RunError("--format picks a model inside a bundle; with a model file, drop --format")
        if tpu is not None and model_format(p) == "onnx":
            raise RunError("--edgetpu runs a .tflite compiled for the Edge TPU; an .onnx model runs on the CPU "
                           "with onnxruntime — drop --edgetpu")
        labels_path = Path(opts.labels) if opts.labels else p.with_name("labels.txt")
        if not labels_path.is_file():
            raise RunError(f"labels file {labels_path} not found; pass --labels FILE (one label per line, "
                           "in the model's output order) or run a bundle directory")
        model = load_model(p, num_threads=opts.threads, edgetpu=tpu is not None, edgetpu_device=tpu or "")
        spec = InputSpec(height=model.input_height, width=model.input_width, crop=opts.crop or 1.0)
        fmt = "edgetpu" if model.delegate == "edgetpu" else model_format(p)
        return LoadedModel(model, spec, read_labels(labels_path), p.name, fmt)
    if opts.labels:
        raise RunError("--labels is for a bare model file; a bundle carries its own labels (its labels.txt and "
                       "manifest) — drop --labels")
    bundle = Bundle.load(p)
    check_deployed(p)  # a device with a trust list runs only signed bundles (exit 10)
    if describe_source(opts.source) == "imx500":  # the AI Camera: the network runs on the sensor
        from edgelite.device.sources.imx500 import sensor_model

        model, entry = sensor_model(bundle)
        return LoadedModel(model, bundle.input, bundle.labels, entry.name, entry.format, bundle, dict(entry.metrics))
    fmt = canonical(opts.format) if opts.format else None  # --format takes the aliases --formats takes
    if tpu is not None:
        if fmt not in (None, "auto", "edgetpu"):
            raise RunError(f"--edgetpu runs the bundle's edgetpu model; drop --format {fmt} or --edgetpu")
        fmt = "edgetpu"
    model, entry, pick = load_picked(bundle, fmt, threads=opts.threads, edgetpu_device=tpu or "")
    spec = bundle.input if opts.crop is None else dataclasses.replace(bundle.input, crop=opts.crop)
    return LoadedModel(model, spec, bundle.labels, entry.name, entry.format, bundle, dict(entry.metrics or {}), pick)


def run(model: str | os.PathLike, source: str | int = "0", *, stop: threading.Event | None = None,
        on_result: Callable[[Result, Frame], None] | None = None, handle_signals: bool = True,
        **options) -> RunSummary:
    """Run the camera loop on `model` (bundle dir or model file) and `source`; options as `RunOptions`
    (`num_threads=` is still taken for `threads=`).

    `stop` ends it from another thread; `on_result(result, frame)` sees every result, in order, on the
    loop's reporting thread (the main thread with `display`); signals are
    handled only when called from the main thread. Returns a RunSummary (see `exit_code`).

        >>> s = run("bundle/", source="frames/", max_frames=10, print_every=0)   # doctest: +SKIP
    """
    if "num_threads" in options:  # the name before --threads was one flag in `run` and `bench`
        options.setdefault("threads", options.pop("num_threads"))
    opts = RunOptions(source=str(source), **options)
    return run_options(model, opts, stop=stop, on_result=on_result, handle_signals=handle_signals)


def run_options(model_path: str | os.PathLike, opts: RunOptions, *, stop: threading.Event | None = None,
                on_result: Callable[[Result, Frame], None] | None = None,
                handle_signals: bool = True) -> RunSummary:
    t_start = time.perf_counter()
    opts.validate()
    stop = stop or threading.Event()
    loaded = load(model_path, opts)
    tmpdir = None
    try:
        if opts.source == HELDOUT_SOURCE and describe_source(opts.source) == "missing":
            opts, tmpdir = _heldout_source(loaded, opts)
        loop = _Loop(loaded, opts, stop, on_result, t_start)
        if tmpdir:  # the logs name what is played, not a temporary file
            loop.shown_source = f"heldout ({len(opts.truth or ())} held-out images as an MJPG video)"
        return loop.run(handle_signals)
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _heldout_source(loaded: LoadedModel, opts: RunOptions) -> tuple[RunOptions, str]:
    """`--source heldout`: a video made from the bundle's held-out images, with their labels as truth."""
    from edgelite.device.video import write_video

    if loaded.bundle is None:
        raise RunError("--source heldout needs a bundle (its heldout.npz); pass the bundle directory")
    data = loaded.bundle.heldout()
    if data is None:
        raise BundleError(f"bundle {loaded.bundle.root} ships no held-out images (heldout.npz); "
                          "pass --source FILE|DIR instead")
    images, labels = data
    tmpdir = tempfile.mkdtemp(prefix="edgelite-heldout-")
    path = write_video(Path(tmpdir) / "heldout.avi", images, scale=2)
    return dataclasses.replace(opts, source=str(path), truth=[int(y) for y in labels], loop=False), tmpdir


class _Loop:
    def __init__(self, loaded: LoadedModel, opts: RunOptions, stop: threading.Event, on_result, t_start: float):
        self.loaded, self.opts, self.stop, self.on_result = loaded, opts, stop, on_result
        self.t_start = t_start
        self.pipeline = Pipeline(loaded.model, loaded.spec, loaded.labels, top_k=opts.top_k,
                                 threshold=opts.class_thresholds(loaded.labels), smooth=opts.smooth,
                                 min_duration=opts.min_duration)
        self.notifier = Notifier()
        self.outputs: list[Output] = []
        self.preview = None
        self.source: Source | None = None
        self.reporter: Reporter[ModelOutput] | None = None
        self.pool: FramePool | None = None  # --threads N on a file: N frames at a time
        self.submitted = 0  # frames through the model (their results may still be on the reporting thread)
        self._emitted = 0  # model outputs handed to the reporting thread
        self.reconnects = 0
        self.correct = self.checked = 0
        self.first_result: float | None = None
        self.t_first = self.t_last = None
        self.label_counts: dict[str, int] = {}
        self.why: list[str] = []
        self.shown_source = redact_url(opts.source)  # what logs, /healthz and the summary say (no password)

    @property
    def info(self) -> dict:
        m = self.loaded.model
        n = self.opts.threads or (self.loaded.pick or {}).get("threads")
        threads = f", {n} threads" if n else ""
        return {"model": self.loaded.name, "format": self.loaded.format, "runtime": f"{m.runtime}{threads}",
                "source": self.shown_source, "source_kind": describe_source(self.opts.source),
                "labels": len(self.loaded.labels),
                "release": os.environ.get("EDGELITE_RELEASE") or None,  # set by a deployed release's run script
                "pick": self.loaded.pick}

    def _open_outputs(self) -> None:
        o = self.opts
        self.outputs += open_outputs(o, on_quit=self.stop.set)
        if o.http:
            from edgelite.device.outputs.preview import PreviewServer
            from edgelite.device.token import read_token

            token = o.token or read_token(o.token_file, error=RunError)  # else $EDGELITE_TOKEN
            self.preview = PreviewServer(o.http, info=self.info, token=token, max_viewers=o.max_viewers,
                                         stale_after=o.stall_timeout, stopping=self.stop).start()
            self.preview.state.degraders += [out for out in self.outputs if hasattr(out, "problem")]
            self.outputs.append(self.preview)
            log.info("preview at %s%s", self.preview.url, " (token required)" if token else "")
        if o.mqtt:
            from edgelite.device.outputs.mqtt import MqttOutput

            mqtt = MqttOutput(o.mqtt, info=self.info, every=o.mqtt_every, ca_file=o.mqtt_ca,
                              discovery_prefix=o.mqtt_discovery)
            self.outputs.append(mqtt)
            if self.preview is not None:
                self.preview.state.collectors.append(mqtt.metric_lines)
            log.info("mqtt: publishing to %s", mqtt.target.url)

    def run(self, handle_signals: bool) -> RunSummary:
        o = self.opts
        try:
            set_rtsp_transport(o.rtsp_transport, o.source)
            self._open_outputs()
            self.source = open_source(o.source, model_size=(self.loaded.spec.height, self.loaded.spec.width),
                                      loop=o.loop, realtime=o.realtime, open_timeout=o.open_timeout,
                                      read_timeout=o.stall_timeout, start=False, prepare=self.pipeline.prepare,
                                      network=str(self.loaded.model.path) if self.loaded.format == "imx500" else None)
            log.info("model %s (%s) · source %s (%s)", self.loaded.name, self.info["runtime"], self.shown_source,
                     self.source.kind)
            # a live camera's results may queue 2 deep (the loop must never lag it); a file's set by its frame size
            self.reporter = Reporter(self._report, max_pending=2 if self.source.drops else 64,
                                     threaded=not o.display, idle=self._flush_outputs)  # cv2 windows: main thread
            if not self.source.drops and not o.display and can_split(self.loaded.model, o.threads):
                self.pool = FramePool(self.pipeline, o.threads)
                log.info("%d frames at a time, one thread each (a file: throughput; a camera gets all %d threads "
                         "on each frame)", o.threads, o.threads)
            with stop_on_signals(self.stop, self.why, handle_signals):
                self.notifier.ready(f"classifying {self.shown_source} with {self.loaded.name}")
                exit_code, reason = self._drive()
        finally:
            if self.pool is not None:
                self.pool.stop()
            self.notifier.stopping()
            self.notifier.close()
            if self.source is not None:
                self.source.close(timeout=0.5)  # a read stuck in a driver must not delay a SIGTERM exit
            failed = None
            if self.reporter is not None:
                try:
                    self.reporter.close()  # the results still queued are reported and written first
                except BrokenPipeError:
                    silence_stdout()
                except BaseException as e:  # raised once the outputs are closed
                    failed = e
            for out in reversed(self.outputs):
                try:
                    out.close()
                except Exception as e:  # a closed pipe must not hide the summary
                    log.warning("closing %s: %s", type(out).__name__, e)
            if self.source is not None:  # a capture thread still in a driver call at exit: C++ destructors
                # run under it and abort the process ("terminate called without an active exception", exit 134
                # instead of 75); it ends within its driver's timeout
                self.source.settle(min(1.0, self.source.reopen_wait) if self.why else self.source.reopen_wait)
            if failed is not None:
                raise failed
        return self._summary(exit_code, reason)

    def _drive(self) -> tuple[int, str]:
        o, src = self.opts, self.source
        failures = 0  # consecutive failed (re)opens; reset by a frame
        while not self.stop.is_set():
            src.open()
            before = self.submitted
            try:
                ended = self._read_pooled(src) if self.pool is not None else self._read_inline(src)
                if ended is not None:
                    return ended
            except EndOfSource:
                return 0, "end of source"
            except SourceFailed as e:
                src.close(timeout=0.5)
                if self.submitted > before:
                    failures = 0
                if self.stop.is_set():
                    break
                if e.at_open and self.submitted == 0 and self.reconnects == 0 and not self._retrying:
                    # the first start, from a terminal: the cause now, not after a minute of backoff
                    raise SourceUnavailable(f"{e}; --retry keeps trying, as the service does") from None
                if failures >= o.max_reconnects:
                    log.error("%s; giving up after %d reconnect attempts", e, failures)
                    return EXIT_SOURCE_LOST, "source lost"
                failures += 1
                self.reconnects += 1
                delay = backoff_delays(o.backoff, o.max_backoff, failures)[-1]
                log.warning("%s; reconnecting in %.1f s (attempt %d of %d)", e, delay, failures, o.max_reconnects)
                if self.preview is not None:
                    self.preview.state.set_status("reconnecting", self.reconnects)
                self.notifier.status(f"reconnecting to {self.shown_source} ({failures}/{o.max_reconnects})")
                self._sleep(delay)
        return 0, f"stopped ({self.why[0]})" if self.why else "stopped"

    @property
    def _retrying(self) -> bool:
        """Retry a source that never opened: asked for (--retry), or a service (systemd's NOTIFY_SOCKET)."""
        return self.opts.retry or bool(os.environ.get("NOTIFY_SOCKET"))

    def _read_inline(self, src: Source) -> tuple[int, str] | None:
        """Frames through the model on this thread until the source ends (raises EndOfSource), stalls or
        fails (SourceFailed), the output closes or --max-frames; None when stopped."""
        o, pipe = self.opts, self.pipeline
        last_frame, t_prev = time.monotonic(), time.perf_counter()
        # the first frame after an open may take the open timeout (a camera starting, a stream's key frame);
        # after it, a gap of --stall-timeout is a stall
        patience = max(o.stall_timeout, o.open_timeout)
        while not self.stop.is_set():
            frames = src.read_queued(READ_SLICE, (o.max_frames - self.submitted) if o.max_frames else 0)
            self.notifier.tick()
            if not frames:
                if not self.reporter.threaded:
                    self._flush_outputs()  # nothing to do: results buffered for a pipe go out now
                if time.monotonic() - last_frame > patience:
                    raise SourceFailed(f"no frame from {self.shown_source} for {patience:g} s")
                continue
            patience = o.stall_timeout
            frames[0].capture_ms = (time.perf_counter() - t_prev) * 1e3  # the others were waiting for the loop
            dropped = src.dropped
            try:
                for frame in frames:  # as little Python between two invoke() calls as can be
                    frame.dropped = dropped
                    self._emit(pipe.run_model(frame))
            except BrokenPipeError:  # `edgelite run ... --json - | head`: the reader is done
                silence_stdout()
                return 0, "output closed"
            self.submitted += len(frames)
            last_frame, t_prev = time.monotonic(), time.perf_counter()
            if o.max_frames and self.submitted >= o.max_frames:
                return 0, "max frames"
        return None

    def _read_pooled(self, src: Source) -> tuple[int, str] | None:
        """As `_read_inline`, with the model copies reading the source themselves (--threads N on a file);
        this thread only watches: stop, a stalled source, the watchdog."""
        o, pool = self.opts, self.pool
        pool.start(src, self._emit, (o.max_frames - self.submitted) if o.max_frames else None)
        try:
            while not pool.wait(READ_SLICE):
                self.notifier.tick()
                if self.stop.is_set():
                    break
                if time.monotonic() - pool.last_frame > o.stall_timeout:
                    raise SourceFailed(f"no frame from {self.shown_source} for {o.stall_timeout:g} s")
        finally:
            pool.stop()  # each copy finishes and emits the frame it has
            self.submitted += pool.taken
        try:
            pool.raise_error()
        except BrokenPipeError:  # `edgelite run ... --json - | head`: the reader is done
            silence_stdout()
            return 0, "output closed"
        return (0, "max frames") if pool.done else None

    def _emit(self, out: ModelOutput) -> None:
        """A frame's model output, in frame order, to the reporting thread (or reported here, with --display);
        called on the loop's thread or a model copy's. Raises BrokenPipeError when the output's reader left."""
        if not self._emitted and not self.source.drops:
            self.reporter.max_pending = pending_for(out.frame.image.nbytes)
        self._emitted += 1
        self.reporter.submit(out)

    def _report(self, out: ModelOutput) -> None:
        """A frame's result: finished, counted and written to every output (on the reporting thread)."""
        result, frame = self.pipeline.report(out), out.frame
        self._record(result, frame)
        for output in self.outputs:
            output.write(result, frame)
        if self.on_result is not None:
            self.on_result(result, frame)

    def _flush_outputs(self) -> None:
        for output in self.outputs:
            try:
                output.flush()
            except BrokenPipeError:  # the reader is gone; the next write ends the loop
                pass

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            self.notifier.tick()
            self.stop.wait(min(left, 1.0))

    def _record(self, result: Result, frame: Frame) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
            self.first_result = now - self.t_start
            self.notifier.status(f"classifying {self.shown_source} with {self.loaded.name}")
        self.t_last = now
        if result.label is not None:
            self.label_counts[result.label] = self.label_counts.get(result.label, 0) + 1
        truth = self.opts.truth
        if truth is not None and frame.index < len(truth):
            self.checked += 1
            self.correct += int(bool(result.top_k) and result.top_k[0].id == int(truth[frame.index]))

    def _summary(self, exit_code: int, reason: str) -> RunSummary:
        pipe = self.pipeline
        n = pipe.count
        span = (self.t_last - self.t_first) if n > 1 else 0.0
        m = self.loaded.model
        stage = pipe.stats.means()
        return RunSummary(
            exit_code=exit_code, reason=reason, frames=n,
            dropped=self.source.dropped if self.source is not None else 0,
            reconnects=self.reconnects, duration_s=time.perf_counter() - self.t_start,
            first_result_s=self.first_result, fps=(n - 1) / span if span > 0 else 0.0,
            stage_ms={k: stage[k] for k in TIMINGS},
            inference_p50_ms=pipe.stats.percentile("inference", 50),
            inference_p95_ms=pipe.stats.percentile("inference", 95),
            model=self.loaded.name, model_path=str(m.path), runtime=m.runtime, source=self.shown_source,
            correct=self.correct if self.opts.truth is not None else None,
            checked=self.checked if self.opts.truth is not None else None,
            preview_url=self.preview.url if self.preview is not None else None,
            label_counts=self.label_counts,
        )


def backoff_delays(backoff: float, max_backoff: float, attempts: int) -> list[float]:
    """The reconnect delays the loop waits, in order (for docs and tests)."""
    return [min(max_backoff, backoff * 2 ** i) for i in range(attempts)] if attempts > 0 else []


__all__ = ["RunOptions", "RunSummary", "LoadedModel", "load", "run", "run_options", "backoff_delays",
           "EXIT_SOURCE_LOST", "HELDOUT_SOURCE"]
