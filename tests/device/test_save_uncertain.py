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


def test_a_card_that_fills_up_mid_run_does_not_stop_the_loop(bundle_dir, mixed_video, small_card):
    """~100 KB left on the card and every frame kept (no low-water mark): the card fills after a few frames. The loop
    classifies every frame to the end and exits 0, the frames that fit are whole JPEGs, no `.part` is left.
    On the parent commit the first ENOSPC ended the run (a service: a restart storm on a full card)."""
    (small_card / "filler").write_bytes(b"x" * 950_000)  # ~100 KB left: a few frames fit
    keep = small_card / "unsure"
    s = run(bundle_dir, source=str(mixed_video), print_every=0, save_uncertain=str(keep), below=1.0,
            max_per_hour=10_000, max_mb=100, uncertain_gap=0, min_free=0, handle_signals=False)
    assert s.exit_code == 0 and s.frames == 160
    files = list(keep.iterdir())
    assert 0 < len(files) < 160 and all(f.suffix == ".jpg" and cv2.imread(str(f)) is not None for f in files)


def test_saving_pauses_under_the_low_water_mark_and_on_a_read_only_card_then_resumes(small_card):
    """The output as the loop drives it, on a real filesystem: under --min-free nothing is written; remounted
    read-only, a write is skipped with the reason (no exception into the loop); writable and with room
    again, saving resumes by itself."""
    import subprocess
    import time

    from edgelite.device.frames import Frame
    from edgelite.device.outputs.uncertain import UncertainOutput
    from edgelite.device.pipeline import Prediction, Result

    image = np.random.default_rng(0).integers(0, 255, (96, 96, 3), np.uint8)

    def offer(out):
        r = Result(frame=0, source_frame=0, timestamp=time.time(), top_k=[Prediction(0, "red", 0.3)], label="red",
                   score=0.3, changed=False, previous=None, timings_ms={}, fps=1.0)
        out.write(r, Frame(image=image, index=0, timestamp=time.time()))
        return len(list((small_card / "unsure").glob("*.jpg")))

    filler = small_card / "filler"
    filler.write_bytes(b"x" * 900_000)  # 1 MB card, ~0.1 MB free
    out = UncertainOutput(small_card / "unsure", below=0.6, max_per_hour=1000, min_gap=0, min_free_mb=0.5,
                          retry_s=0.05)
    assert offer(out) == 0 and "MB free on the filesystem" in out.problem and "under --min-free 0.5 MB" in out.problem
    filler.unlink()  # room again
    time.sleep(0.06)
    assert offer(out) == 1 and out.problem is None
    subprocess.run(["mount", "-o", "remount,ro", str(small_card)], check=True)
    time.sleep(0.06)
    assert offer(out) == 1 and "Read-only file system" in out.problem
    subprocess.run(["mount", "-o", "remount,rw", str(small_card)], check=True)
    time.sleep(0.06)
    assert offer(out) == 2 and out.problem is None


def test_a_read_only_card_while_running_is_degraded_on_healthz_and_the_loop_goes_on(tiny, small_card, tmp_path):
    """A real `edgelite run --http --save-uncertain` on a looping clip; its card remounted read-only (what the
    kernel does after an I/O error): /healthz stays HTTP 200 with status "degraded" and the reason, frames
    keep coming, the process is the same (no restart); writable again, saving resumes and the status is ok.
    On the parent commit the first failed write ended the process."""
    import subprocess
    import time

    from edgelite.device.video import write_video
    from tests.device.test_run_preview import get, wait_healthy

    video = write_video(tmp_path / "cam.avi", tiny["heldout"][0][:30], scale=3, fps=30.0, repeat=3)
    keep = small_card / "unsure"
    port = devicekit.free_port()
    proc = devicekit.start_cmd(tiny["bundle"], "--source", video, "--loop", "--realtime", "--http",
                               f"127.0.0.1:{port}", "--print-every", "0", "--save-uncertain", keep, "--below", "1.0",
                               "--max-per-hour", "3600", "--min-free", "0")
    base = f"http://127.0.0.1:{port}"

    def health(pred, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            code, _, body = get(base + "/healthz")
            h = json.loads(body)
            if pred(code, h):
                return h
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.5)
        raise AssertionError(f"/healthz: {code} {h}")

    try:
        wait_healthy(base)
        health(lambda c, h: len(list(keep.glob("*.jpg"))) >= 1)
        subprocess.run(["mount", "-o", "remount,ro", str(small_card)], check=True)
        h = health(lambda c, h: h["status"] == "degraded")
        assert "Read-only file system" in h["degraded"][0], h
        frames = h["frames"]
        h = health(lambda c, h: c == 200 and h["frames"] > frames + 10)
        assert h["status"] == "degraded"
        subprocess.run(["mount", "-o", "remount,rw", str(small_card)], check=True)
        n = len(list(keep.glob("*.jpg")))
        h = health(lambda c, h: h["status"] == "ok" and len(list(keep.glob("*.jpg"))) > n, timeout=60)
        assert "degraded" not in h and proc.poll() is None
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_card)], check=False)
        proc.terminate()
        proc.communicate(timeout=30)


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
