"""Per-class thresholds (`--threshold 0.5 --threshold cat=0.8`) and `--min-duration S`, on the real tiny model:
they shape `Result.label` / `changed`, which the console, JSON lines, the preview and MQTT all report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgelite.device import run
from edgelite.device.errors import RunError
from edgelite.device.frames import Frame
from edgelite.device.loop import load
from edgelite.device.options import RunOptions
from edgelite.device.pipeline import Pipeline
from tests import kit
from tests.device import devicekit


def _results(bundle, source, **opts):
    out = []
    run(bundle, source=str(source), format="fp32", print_every=0, handle_signals=False,
        on_result=lambda r, f: out.append(r), **opts)
    return out


def test_a_class_threshold_hides_only_that_class(tiny, heldout_folder):
    first = kit.LABELS[0]
    plain = _results(tiny["bundle"], heldout_folder)
    strict = _results(tiny["bundle"], heldout_folder, threshold=["0", f"{first}=0.999999"])
    assert len(plain) == len(strict) == len(tiny["heldout"][1])
    hidden = [i for i, r in enumerate(plain) if r.label == first and r.score < 0.999999]
    assert hidden, "the tiny model should be less than certain of some frames of its first class"
    for i, (a, b) in enumerate(zip(plain, strict, strict=True)):
        assert b.top_k == [p for p in a.top_k if p.label != first or p.score >= 0.999999]  # others untouched
        if a.label != first:
            assert b.label == a.label and b.score == a.score
        if i in hidden:
            assert b.label != first


def test_the_cli_takes_repeated_thresholds_and_refuses_an_unknown_class(tiny, heldout_video, tmp_path):
    first = kit.LABELS[0]
    p = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--format", "fp32", "--print-every", "0",
                          "--threshold", "0.3", "--threshold", f"{first}=0.999999", "--json", tmp_path / "r.jsonl")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert all(t["score"] >= (0.999999 if t["label"] == first else 0.3) for r in rows for t in r["top_k"])
    p = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--threshold", "unicorn=0.5")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("edgelite run: error: --threshold unicorn=...: no class")


@pytest.mark.parametrize("value", ["cat=", "high", "cat=1.5", "-0.1"])
def test_bad_thresholds_are_refused(value):
    with pytest.raises(RunError, match="--threshold"):
        RunOptions(threshold=[value]).validate()


def test_min_duration_reports_a_new_label_only_once_it_has_held(tiny):
    """Frame times 0.125 s apart: A x5, a 0.25 s blip of B, then C. With --min-duration 0.375 the blip is no
    event and C becomes the label (one event) 0.375 s after it first appeared."""
    x, y = tiny["heldout"]
    loaded = load(tiny["bundle"], RunOptions(format="fp32"))
    pick = {}
    for cls in (0, 1, 2):  # an image of each class the model gets right and is sure of
        pipe = Pipeline(loaded.model, loaded.spec, loaded.labels)
        for img in x[y == cls]:
            r = pipe.process(Frame(image=kit.upscaled_bgr(img, 3), index=0, timestamp=0.0))
            if r.top_k[0].id == cls and r.score > 0.9:
                pick[cls] = kit.upscaled_bgr(img, 3)
                break
    assert len(pick) == 3
    plan = [0] * 5 + [1] * 2 + [2] * 6
    t0 = 1_800_000_000.0  # binary-exact frame times

    def labels(min_duration):
        pipe = Pipeline(loaded.model, loaded.spec, loaded.labels, min_duration=min_duration)
        rs = [pipe.process(Frame(image=pick[c], index=i, timestamp=t0 + 0.125 * i)) for i, c in enumerate(plan)]
        return [r.label for r in rs], [i for i, r in enumerate(rs) if r.changed], rs

    names = [loaded.labels[c] for c in plan]
    raw, raw_events, _ = labels(0.0)
    assert raw == names and raw_events == [0, 5, 7]
    held, events, rs = labels(0.375)
    assert events == [0, 10]  # C appeared at frame 7 and has held 0.375 s at frame 10
    assert held == [names[0]] * 10 + [names[-1]] * 3
    assert rs[10].previous == names[0]
    blip = rs[5]
    assert blip.top_k[0].label == names[5] and blip.label == names[0]  # top-k stays raw, the label waits
    assert blip.score == pytest.approx(next((p.score for p in blip.top_k if p.label == names[0]), blip.score), abs=1e-6)
    assert np.isfinite(blip.score)
