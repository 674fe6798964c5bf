"""`RunSummary`: what `edgelite run` reports when its loop ends (also `run()`'s return value)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class RunSummary:
    exit_code: int
    reason: str  # end of source | max frames | stopped (SIGTERM) | source lost | ...
    frames: int
    dropped: int
    reconnects: int
    duration_s: float  # run() start to the end of the loop
    first_result_s: float | None  # run() start to the first result
    fps: float  # over the whole run, first to last result
    stage_ms: dict[str, float]  # mean ms per stage (capture, preprocess, inference, postprocess, total)
    inference_p50_ms: float
    inference_p95_ms: float
    model: str  # bundle entry name or file name
    model_path: str
    runtime: str
    source: str
    correct: int | None = None  # with truth: results whose top-1 id matched
    checked: int | None = None
    preview_url: str | None = None
    label_counts: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.checked if self.checked else None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["accuracy"] = self.accuracy
        return d

    def line(self) -> str:
        m = self.stage_ms
        return (f"{self.frames} frames in {self.duration_s:.2f} s ({self.fps:.1f} fps), dropped {self.dropped}, "
                f"reconnects {self.reconnects}; mean ms: capture {m['capture']:.2f} preprocess {m['preprocess']:.3f} "
                f"inference {m['inference']:.2f} postprocess {m['postprocess']:.3f}; {self.reason}")
