"""One frame through the model: preprocess -> invoke -> postprocess, with per-stage timings.

    >>> pipe = Pipeline(model, bundle.input, bundle.labels, top_k=3)      # doctest: +SKIP
    >>> result = pipe.process(frame)                                      # doctest: +SKIP
    >>> result.label, result.timings_ms["inference"], result.fps          # doctest: +SKIP

`process` is `report(run_model(frame))`: the camera loop runs the two halves on two threads, handing a
`ModelOutput` from the model's thread to the reporting thread.

The model is loaded once by the caller (`runtime.load_from_bundle` / `runtime.load_model`); the
pipeline owns no thread and no I/O, so `bench` can time exactly what `run` does.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from edgelite.device.frames import Frame
from edgelite.device.preprocess import prepare_bgr
from edgelite.device.runtime import Model, ModelLoadError, Prediction, top_k

if TYPE_CHECKING:
    from edgelite.bundle import InputSpec

__all__ = ["STAGES", "TIMINGS", "ModelOutput", "Pipeline", "Prediction", "Result", "StageStats"]

#: the camera loop's stages, in order: the keys of `Result.timings_ms` (with "total"), of `run`'s summary,
#: the preview's /metrics and `bench --pipeline`'s columns
STAGES = ("capture", "preprocess", "inference", "postprocess")
TIMINGS = (*STAGES, "total")


class ModelOutput(NamedTuple):
    """A frame's model output, from the model's thread (`Pipeline.run_model`) to the reporting thread
    (`Pipeline.report`). The frame carries the rest of its timings (`capture_ms`) and the drop count."""

    frame: Frame
    raw: np.ndarray  # the output as the model wrote it (int8/uint8 for a quantized model)
    prep_ms: float  # preprocess: the capture thread's `prepare` plus the copy into the input tensor
    inference_ms: float  # invoke()


# ModelOutput(...) runs the NamedTuple's Python-level __new__ (about 1 us here); tuple.__new__ makes the same
# tuple in 0.17 us, and run_model makes one per frame between two invoke() calls
_new_output = tuple.__new__


@dataclasses.dataclass
class Result:
    """What the loop reports for one frame (also the JSON line, see `to_dict`)."""

    frame: int  # results so far, from 0
    source_frame: int  # the frame's index in its source (gaps = dropped frames)
    timestamp: float  # capture time, seconds since the epoch
    top_k: list[Prediction]
    label: str | None  # top-1 label, None when below --threshold (held back by --min-duration)
    score: float  # top-1 score (after smoothing)
    changed: bool  # label differs from the previous result's (a label-change event)
    previous: str | None
    timings_ms: dict[str, float]
    fps: float  # rolling over the last results
    dropped: int = 0  # frames the source dropped so far (live sources)
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {
            "frame": self.frame,
            "source_frame": self.source_frame,
            "timestamp": round(self.timestamp, 6),
            "label": self.label,
            "score": round(self.score, 6),
            "top_k": [{"id": p.id, "label": p.label, "score": round(p.score, 6)} for p in self.top_k],
            "changed": self.changed,
            "timings_ms": {k: round(v, 4) for k, v in self.timings_ms.items()},
            "fps": round(self.fps, 3),
            "dropped": self.dropped,
        }
        if self.changed:
            d["previous"] = self.previous
        if self.file is not None:
            d["file"] = self.file
        return d

    def to_json(self) -> str:
        """`json.dumps(self.to_dict(), separators=(",", ":"))`, character for character, in a quarter of the
        time: the JSON line `run --json` writes for every frame (a 1 ms model runs 1000 of them a second)."""
        t = self.timings_ms
        top = ",".join(f'{{"id":{p.id},"label":{_jstr(p.label)},"score":{_jnum(round(p.score, 6))}}}'
                       for p in self.top_k)
        timings = ",".join(f"{_jstr(k)}:{_jnum(round(v, 4))}" for k, v in t.items())
        line = (f'{{"frame":{self.frame},"source_frame":{self.source_frame},'
                f'"timestamp":{_jnum(round(self.timestamp, 6))},"label":{_jstr(self.label)},'
                f'"score":{_jnum(round(self.score, 6))},"top_k":[{top}],"changed":{"true" if self.changed else "false"},'
                f'"timings_ms":{{{timings}}},"fps":{_jnum(round(self.fps, 3))},"dropped":{self.dropped}')
        if self.changed:
            line += f',"previous":{_jstr(self.previous)}'
        if self.file is not None:
            line += f',"file":{_jstr(self.file)}'
        return line + "}"


@functools.lru_cache(maxsize=4096)
def _jstr(text: str | None) -> str:
    """A label (or None) as JSON, cached: a model has few labels, and they repeat every frame."""
    return json.dumps(text)


def _jnum(x: float) -> str:
    """A float as json.dumps writes it (repr; NaN/Infinity as json spells them)."""
    return repr(x) if math.isfinite(x) else json.dumps(x)


class StageStats:
    """Running means of each stage plus a bounded window for percentiles (constant memory)."""

    def __init__(self, window: int = 2048):
        self.count = 0
        self.sums = dict.fromkeys(TIMINGS, 0.0)
        self._recent: collections.deque[tuple[float, ...]] = collections.deque(maxlen=window)

    def add(self, timings: dict[str, float]) -> None:
        self.count += 1
        for k in self.sums:
            self.sums[k] += timings[k]
        self._recent.append(tuple(timings[k] for k in self.sums))

    def means(self) -> dict[str, float]:
        return {k: (v / self.count if self.count else 0.0) for k, v in self.sums.items()}

    def percentile(self, stage: str, q: float) -> float:
        if not self._recent:
            return 0.0
        i = list(self.sums).index(stage)
        return float(np.percentile([r[i] for r in self._recent], q))


class Pipeline:
    """preprocess -> invoke -> postprocess for one loaded model.

    `smooth` averages the scores of the last N frames before top-k (steadier labels on a live camera);
    `threshold` hides classes scoring below it (the label becomes None): one value, or one per class.
    `min_duration` (s): a new top-1 label becomes `Result.label` — and a `changed` event for the console,
    JSON, preview and MQTT alike — only once it has held that long (frame time); until then the label
    reported stays the previous one.
    """

    def __init__(self, model: Model, spec: InputSpec, labels: list[str], *, top_k: int = 3,
                 threshold: float | Sequence[float] = 0.0, smooth: int = 1, fps_window: int = 30,
                 min_duration: float = 0.0):
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        if smooth < 1:
            raise ValueError("smooth must be >= 1")
        self.model, self.spec = model, spec
        self.labels = list(labels)
        if len(self.labels) != model.num_classes:
            raise ModelLoadError(f"the model outputs {model.num_classes} classes but there are {len(self.labels)} labels")
        self.k, self.smooth, self.min_duration = top_k, smooth, min_duration
        # per-class thresholds: top_k filters by the lowest, then each class by its own
        self._class_threshold = None if np.ndim(threshold) == 0 else np.asarray(threshold, np.float32)
        self.threshold = float(np.min(threshold)) if self._class_threshold is not None else float(threshold)
        self._ids = {name: i for i, name in enumerate(self.labels)}
        self._candidate: str | None = None  # with min_duration: the new top-1 waiting to hold
        self._candidate_since = 0.0
        self._rgb = np.empty((spec.height, spec.width, 3), np.uint8)  # used when the tensor takes no raw pixels
        self._hist = np.zeros((smooth, model.num_classes), np.float32) if smooth > 1 else None
        self._hist_sum = np.zeros(model.num_classes, np.float64) if smooth > 1 else None
        self._hist_n = 0
        self._times: collections.deque[float] = collections.deque(maxlen=max(2, fps_window))
        self.stats = StageStats()
        self._shape_ok = False
        self.count = 0
        self._last_label: str | None = None

    # -- stages (public so bench can time them one by one)
    def prepare(self, image_bgr: np.ndarray) -> np.ndarray:
        """BGR frame -> a new RGB model input array (for a capture thread to run ahead of inference)."""
        return prepare_bgr(image_bgr, self.spec)

    def load_input(self, rgb: np.ndarray) -> None:
        """Copy a prepared RGB model input into the input tensor (one copy; the adapter quantizes if it must)."""
        self.model.set_input(rgb)

    def preprocess(self, image_bgr: np.ndarray) -> None:
        """Centre-crop, resize, BGR->RGB, straight into the model's input tensor when it takes raw pixels."""
        view = self.model.input_view()
        if view is not None:
            prepare_bgr(image_bgr, self.spec, out=view)
            del view  # the interpreter refuses to invoke while a view of its memory is alive
        else:
            prepare_bgr(image_bgr, self.spec, out=self._rgb)
            self.model.set_input(self._rgb)

    def infer_raw(self) -> np.ndarray:
        """invoke -> the output as the model wrote it (int8/uint8 for a quantized model); `model.dequantize` it."""
        try:
            self.model.invoke()
            raw = self.model.output()
        except Exception as e:  # runtimes raise their own types (onnxruntime's Fail, InvalidArgument, ...)
            raise ModelLoadError(f"inference failed on {self.model.path.name}: {e}") from None
        # a corrupt graph can disagree with its own declaration; once right, its output shape stays right
        if not self._shape_ok and raw.shape != (self.model.num_classes,):
            raise ModelLoadError(f"{self.model.path.name} returned scores of shape {raw.shape}, "
                                 f"expected ({self.model.num_classes},); the model file is corrupt")
        self._shape_ok = True
        return raw

    def postprocess(self, scores: np.ndarray) -> tuple[list[Prediction], np.ndarray]:
        if self._hist is not None:
            slot = self._hist_n % self.smooth
            self._hist_sum += scores - self._hist[slot]
            self._hist[slot] = scores
            self._hist_n += 1
            scores = (self._hist_sum / min(self._hist_n, self.smooth)).astype(np.float32)
        preds = top_k(scores, self.k, self.threshold, self.labels)
        if self._class_threshold is not None:
            preds = [p for p in preds if p.score >= self._class_threshold[p.id]]
        return preds, scores

    def _held_label(self, label: str | None, t: float) -> str | None:
        """The label to report under `min_duration`: the new top-1 once it has held long enough."""
        if label == self._last_label or self.count == 0:
            self._candidate = None
            return label
        if label != self._candidate:
            self._candidate, self._candidate_since = label, t
        if t - self._candidate_since >= self.min_duration:
            self._candidate = None
            return label
        return self._last_label

    # -- the whole frame
    def process(self, frame: Frame) -> Result:
        """`run_model` then `report`: one frame through the model and into a Result (its capture time and
        drop count are the frame's `capture_ms` and `dropped`)."""
        return self.report(self.run_model(frame))

    def run_model(self, frame: Frame) -> ModelOutput:
        """The model's part of a frame, on the model's thread: input in, invoke, output out. `report`
        dequantizes (off this thread: right after invoke() each Python operation runs cold, several
        microseconds, and a 1 ms model runs 1,000 frames a second)."""
        if frame.sensor_scores is not None:  # the camera's sensor ran the model: its scores came with the frame
            return _new_output(ModelOutput, (frame, frame.sensor_scores, 0.0, frame.sensor_ms))
        t0 = time.perf_counter()
        if frame.model_input is not None:  # prepared in the capture thread: only the copy is left
            self.load_input(frame.model_input)
            prep_ms = frame.prep_ms
        else:
            self.preprocess(frame.model_image if frame.model_image is not None else frame.image)
            prep_ms = 0.0
        t1 = time.perf_counter()
        raw = self.infer_raw()
        return _new_output(ModelOutput, (frame, raw, prep_ms + (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3))

    def report(self, out: ModelOutput) -> Result:
        """The rest of a frame from `run_model`'s output — dequantizing, top-k, thresholds, smoothing,
        label events, statistics — as a Result; the capture time and drop count come from `out.frame`.
        Results must be reported in frame order (smoothing and label events carry state), on any thread."""
        t2 = time.perf_counter()
        frame = out.frame
        preds, scores = self.postprocess(self.model.dequantize(out.raw))
        label = preds[0].label if preds else None
        score = preds[0].score if preds else 0.0
        if self.min_duration > 0:
            held = self._held_label(label, frame.timestamp)
            if held != label:  # still the previous label: report its own score
                label, score = held, (float(scores[self._ids[held]]) if held is not None else 0.0)
        changed, previous = label != self._last_label or self.count == 0, self._last_label
        self._last_label = label
        t3 = time.perf_counter()
        timings = {"capture": frame.capture_ms, "preprocess": out.prep_ms, "inference": out.inference_ms,
                   "postprocess": (t3 - t2) * 1e3}
        timings["total"] = sum(timings.values())
        self._times.append(t3)
        n = len(self._times)
        fps = (n - 1) / (self._times[-1] - self._times[0]) if n > 1 and self._times[-1] > self._times[0] else 0.0
        self.stats.add(timings)
        result = Result(frame=self.count, source_frame=frame.index, timestamp=frame.timestamp, top_k=preds,
                        label=label, score=score, changed=changed, previous=previous, timings_ms=timings,
                        fps=fps, dropped=frame.dropped, file=frame.file)
        self.count += 1
        return result
