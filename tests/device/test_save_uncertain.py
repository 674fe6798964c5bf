"""`edgelite run --save-uncertain DIR`: the real loop on a real video keeps exactly the frames the model was
unsure of, names them with time and guesses, and its rate and size caps are actually enforced."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest

from edgelite.device import run
from edgelite.device.options import RunOptions
from edgelite.device.video import write_video
from tests.device import devicekit

NAME = re.compile(r"^\d{8}-\d{6}-\d{3}_(?P<guesses>.+?)(-\d+)?\.jpg$")


def _results(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _scores_in_name(name: str) -> list[tuple[str, float]]:
    m = NAME.match(name)
    assert m, name
    return [(g.rsplit("-", 1)[0], float(g.rsplit("-", 1)[1])) for g in m.group("guesses").split("_")]


@pytest.fixture(scope="module")
def mixed_video(heldout, tmp_path_factory):
    """The held-out images, then 40 frames that blend two of them (ambiguous to the model): a clip on which
    the model is sure of some frames and unsure of others."""
    x, _ = heldout
    blends = ((x[:40].astype(np.uint16) + x[40:80]) // 2).astype(np.uint8)
    return write_video(tmp_path_factory.mktemp("mixed") / "mixed.avi", np.concatenate([x, blends]), scale=3)


def test_exactly_the_low_confidence_frames_are_kept_with_their_guesses_in_the_name(bundle_dir, mixed_video, tmp_path):
    # the scores this model gives this clip, and a cap strictly between two of them near the lower third
    run(bundle_dir, source=str(mixed_video), print_every=0, json=str(tmp_path / "a.jsonl"), handle_signals=False)
    scores = sorted({r["score"] for r in _results(tmp_path / "a.jsonl")})
    assert len(scores) > 3, scores
    i = len(scores) // 3
    below = (scores[i] + scores[i + 1]) / 2
    keep = tmp_path / "unsure"
    s = run(bundle_dir, source=str(mixed_video), print_every=0, json=str(tmp_path / "r.jsonl"),
            save_uncertain=str(keep), below=below, max_per_hour=10_000, uncertain_gap=0, handle_signals=False)
    assert s.exit_code == 0 and s.frames == 160
    unsure = [r for r in _results(tmp_path / "r.jsonl") if r["score"] < below]
    files = sorted(keep.glob("*.jpg"))
    assert 0 < len(unsure) < s.frames
    assert len(files) == len(unsure)
    named = sorted((g[0][0], g[0][1]) for g in (_scores_in_name(f.name) for f in files))
    assert named == sorted((r["top_k"][0]["label"], float(f"{r['score']:.2f}")) for r in unsure)
    for f in files:
        guesses = _scores_in_name(f.name)
        assert len(guesses) == 3 and guesses[0][1] >= guesses[1][1] >= guesses[2][1]
        img = cv2.imread(str(f))
        assert img is not None and img.shape == (96, 96, 3)  # the full camera frame, decodable


def test_the_hourly_rate_cap_is_enforced(bundle_dir, mixed_video, tmp_path):
    keep = tmp_path / "unsure"
    s = run(bundle_dir, source=str(mixed_video), print_every=0, json=str(tmp_path / "r.jsonl"),
            save_uncertain=str(keep), below=1.0, max_per_hour=5, uncertain_gap=0, handle_signals=False)
    assert sum(r["score"] < 1.0 for r in _results(tmp_path / "r.jsonl")) > 5
    assert len(list(keep.glob("*.jpg"))) == 5 and s.frames == 160


def test_the_size_cap_is_enforced_and_frames_already_there_count(bundle_dir, mixed_video, tmp_path):
    keep = tmp_path / "unsure"
    cap_mb = 0.02
    run(bundle_dir, source=str(mixed_video), print_every=0, save_uncertain=str(keep), below=1.0,
        max_per_hour=10_000, max_mb=cap_mb, uncertain_gap=0, handle_signals=False)
    sizes = [f.stat().st_size for f in keep.glob("*.jpg")]
    assert len(sizes) >= 2
    assert sum(sizes) - max(sizes) < cap_mb * 1e6 <= sum(sizes)  # stops at the first frame over the cap
    # a restart (systemd) finds the folder full and keeps nothing more
    before = sorted(p.name for p in keep.iterdir())
    run(bundle_dir, source=str(mixed_video), print_every=0, save_uncertain=str(keep), below=1.0,
        max_per_hour=10_000, max_mb=cap_mb, uncertain_gap=0, handle_signals=False)
    assert sorted(p.name for p in keep.iterdir()) == before


def test_the_cli_flags_reach_the_loop_and_the_default_gap_spaces_a_burst(bundle_dir, heldout_video, tmp_path):
    keep = tmp_path / "unsure"
    p = devicekit.run_cmd(bundle_dir, "--source", heldout_video, "--print-every", "0", "--save-uncertain", keep,
                          "--below", "1.0", "--max-per-hour", "50")
    assert p.returncode == 0, p.stderr
    # the clip is read faster than real time: the default 1 s gap keeps the first frame of the burst only
    assert 1 <= len(list(keep.glob("*.jpg"))) <= 2, p.stderr
    assert "--save-uncertain: kept" in p.stderr


@pytest.mark.parametrize("opts, message", [
    (dict(below=0.0), "--below must be within (0, 1]"),
    (dict(below=1.5), "--below must be within (0, 1]"),
    (dict(max_per_hour=0), "--max-per-hour must be at least 1"),
    (dict(max_mb=0), "--max-mb positive"),
])
def test_bad_caps_are_refused(opts, message):
    with pytest.raises(Exception, match=re.escape(message)):
        RunOptions(save_uncertain="x", **opts).validate()


def test_an_unwritable_folder_is_one_line(bundle_dir, heldout_video, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = devicekit.run_cmd(bundle_dir, "--source", heldout_video, "--save-uncertain", blocker / "sub")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("edgelite run: error: --save-uncertain "), p.stderr


def test_saving_resumes_when_the_full_folder_gets_room_again(tmp_path, caplog):
    """The size-cap warning promises saving resumes once frames are pulled or removed: it does (issue #22)."""
    import logging
    import time

    import numpy as np

    from edgelite.device.frames import Frame
    from edgelite.device.outputs.uncertain import UncertainOutput
    from edgelite.device.pipeline import Prediction, Result

    rng = np.random.default_rng(0)
    keep = tmp_path / "unsure"
    out = UncertainOutput(keep, below=1.0, max_mb=0.05, min_gap=0, max_per_hour=10_000, recheck=0.2)

    def feed(n: int) -> None:
        for i in range(n):
            image = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)  # noise: ~20 kB a JPEG
            result = Result(frame=i, source_frame=i, timestamp=time.time(), top_k=[Prediction(0, "cat", 0.4)],
                            label="cat", score=0.4, changed=False, previous=None, timings_ms={}, fps=10.0)
            out.write(result, Frame(image=image, index=i, timestamp=time.time()))

    with caplog.at_level(logging.WARNING, logger="edgelite.device"):
        feed(20)
        full = sorted(keep.glob("*.jpg"))
        assert 2 <= len(full) < 20 and out.skipped_full > 0
        assert "not saving more frames until some are pulled" in caplog.text
        for p in full:  # what `deploy --pull-frames` does: the frames leave the device
            p.unlink()
        time.sleep(0.3)  # the full folder is measured again every `recheck` s
        feed(3)
    assert len(list(keep.glob("*.jpg"))) >= 1
    assert "has room again" in caplog.text
