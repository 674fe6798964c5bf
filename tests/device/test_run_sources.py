"""Sources: a stalling network camera on 127.0.0.1 (reconnect with backoff, then the distinct exit code),
live-source frame dropping, folders."""

from __future__ import annotations

import json
import subprocess
import time

import cv2
import numpy as np
import pytest

from edgelite.device import run
from edgelite.device.errors import EXIT_SOURCE_LOST, EndOfSource, SourceError
from edgelite.device.loop import backoff_delays
from edgelite.device.sources import describe_source, open_source
from edgelite.device.sources.folder import FolderSource
from edgelite.device.video import write_video
from tests.device import devicekit


def test_stalling_network_source_reconnects_then_exits_75(tiny, tmp_path):
    """First connection: 10 frames then silence; every later connection: silence. The loop must reopen
    with backoff, then give up with exit code 75 so systemd restarts it."""
    x, _ = tiny["heldout"]
    out = tmp_path / "r.jsonl"
    with devicekit.MjpegServer(x[:10], plan=[10]) as cam:
        t0 = time.monotonic()
        p = devicekit.run_cmd(tiny["bundle"], "--source", cam.url, "--stall-timeout", "1", "--open-timeout", "2",
                              "--max-reconnects", "2", "--backoff", "0.1", "--json", out, "--print-every", "0",
                              timeout=60)
        took = time.monotonic() - t0
    assert p.returncode == EXIT_SOURCE_LOST == 75, p.stderr
    assert "Traceback" not in p.stderr
    lines = [json.loads(s) for s in out.read_text().splitlines()]
    # a live source keeps only the latest frame: some of the 10 may be dropped, none is classified twice
    assert 1 <= len(lines) <= 10 and len(lines) + lines[-1]["dropped"] <= 10
    assert p.stderr.count("reconnecting in") == 2 and "giving up after 2 reconnect attempts" in p.stderr
    assert cam.connections == 3
    assert took < 20


def test_network_source_recovers_after_a_stall(tiny, tmp_path):
    x, y = tiny["heldout"]
    out = tmp_path / "r.jsonl"
    blue = x[y == devicekit.LABELS.index("blue")][:5]
    with devicekit.MjpegServer(blue, plan=[5, None]) as cam:
        p = devicekit.run_cmd(tiny["bundle"], "--source", cam.url, "--stall-timeout", "1", "--backoff", "0.1",
                              "--max-frames", "25", "--json", out, "--print-every", "0", timeout=60)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(s) for s in out.read_text().splitlines()]
    assert len(lines) == 25 and "reconnects 1" in p.stderr
    assert cam.connections == 2
    # what came over the network (JPEG) is classified as the images it was made from
    assert np.mean([d["label"] == "blue" for d in lines]) >= 0.9


def test_a_slow_first_frame_is_waited_for_up_to_the_open_timeout(tiny, tmp_path):
    """A camera starting up (the emulated Pi under load: vivid's first frame after 7 s) is not a stall: the first
    frame after an open may take --open-timeout; only then does --stall-timeout apply. Before, the loop reopened
    it after --stall-timeout, again and again, and gave up (exit 75) on a camera that worked."""
    x, _ = tiny["heldout"]
    out = tmp_path / "r.jsonl"
    with devicekit.MjpegServer(x[:10], plan=[None], first_delay=2.5) as cam:
        p = devicekit.run_cmd(tiny["bundle"], "--source", cam.url, "--stall-timeout", "1", "--open-timeout", "6",
                              "--max-reconnects", "1", "--backoff", "0.1", "--max-frames", "5", "--json", out,
                              "--print-every", "0", timeout=60)
    assert p.returncode == 0, p.stderr
    assert "reconnecting" not in p.stderr and cam.connections == 1
    assert len(out.read_text().splitlines()) == 5


def test_unreachable_source_exits_75_quickly(tiny):
    """As a service (--retry; systemd's NOTIFY_SOCKET does the same): a stream that never opened is retried
    --max-reconnects times, then exit 75 so systemd restarts it; each attempt names the cause."""
    port = devicekit.free_port()  # nothing listens: connection refused
    p = devicekit.run_cmd(tiny["bundle"], "--source", f"http://127.0.0.1:{port}/stream.mjpg", "--max-reconnects", "1",
                          "--backoff", "0.05", "--stall-timeout", "2", "--open-timeout", "2", "--retry", timeout=60)
    assert p.returncode == 75, p.stderr
    assert f"connection refused by 127.0.0.1:{port}" in p.stderr and "Traceback" not in p.stderr
    assert "reconnecting in" in p.stderr and "giving up after 1 reconnect attempts" in p.stderr


def _first_start(tiny, source: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    p = devicekit.run_cmd(tiny["bundle"], "--source", source, timeout=60, env=env)
    return p, time.monotonic() - t0


def test_a_missing_camera_says_so_at_once(tiny):
    """Issue 25, item 3: `--source 7` with no such camera took 15.5 s, five retries and said "cannot open 7
    (timeout 10 s)"; the cause was only in OpenCV's [ WARN ] lines. From a terminal it is now one line at
    once, naming the cause, exit 75 — and none of OpenCV's noise."""
    p, took = _first_start(tiny, "97")
    err = [line for line in p.stderr.splitlines() if "error:" in line]
    assert p.returncode == 75 and len(err) == 1, p.stderr
    assert "cannot open camera 97: no /dev/video97: " in err[0]
    assert ("this machine has no cameras (ls /dev/video*)" in err[0]) != ("the cameras here are /dev/video" in err[0])
    assert "--retry keeps trying" in err[0]
    assert "reconnecting" not in p.stderr and "[ WARN" not in p.stderr and took < 10


def test_a_refused_stream_says_connection_refused_at_once(tiny):
    """The same for a stream nobody serves: "connection refused by HOST:PORT" at once; FFmpeg's own
    `[tcp @ 0x...] Connection ... refused` line only with -v."""
    port = devicekit.free_port()
    url = f"rtsp://127.0.0.1:{port}/cam"
    p, took = _first_start(tiny, url)
    assert p.returncode == 75 and f"cannot open stream {url}: connection refused by 127.0.0.1:{port}" in p.stderr
    assert "reconnecting" not in p.stderr and "[tcp @" not in p.stderr and took < 10
    v = devicekit.run_cmd(tiny["bundle"], "--source", url, "-v", timeout=60)
    assert v.returncode == 75 and "[tcp @" in v.stderr  # -v: FFmpeg's line is there for who wants it


def test_under_systemd_a_camera_that_never_opened_is_retried(tiny, tmp_path):
    """A service (NOTIFY_SOCKET set, as systemd's Type=notify unit does) keeps the retries and exit 75."""
    env = {**devicekit.cli_env(), "NOTIFY_SOCKET": str(tmp_path / "no-listener")}
    p = devicekit.run_cmd(tiny["bundle"], "--source", "97", "--max-reconnects", "1", "--backoff", "0.05",
                          timeout=60, env=env)
    assert p.returncode == 75 and "reconnecting in" in p.stderr and "no /dev/video97" in p.stderr, p.stderr


def test_backoff_doubles_up_to_the_cap():
    assert backoff_delays(0.5, 30, 8) == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_delays(1, 30, 0) == []


def test_realtime_file_drops_frames_and_never_lags(tiny, tmp_path):
    """A live source keeps only the latest frame: a slow loop skips frames instead of falling behind."""
    x, _ = tiny["heldout"]
    video = write_video(tmp_path / "fast.avi", x[:60], scale=1, fps=200.0, repeat=2)  # 120 frames in 0.6 s
    seen = []

    def slow(result, frame):
        seen.append(result.source_frame)
        time.sleep(0.02)  # a 50 fps loop on a 200 fps camera

    s = run(tiny["bundle"], source=str(video), realtime=True, print_every=0, on_result=slow, handle_signals=False)
    assert s.exit_code == 0 and s.reason == "end of source"
    assert s.dropped > 40 and s.frames < 90
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[-1] >= 110  # it kept up with the camera: the last frame classified is (nearly) the last one shot
    assert s.frames + s.dropped == pytest.approx(120, abs=2)


def test_file_source_reads_every_frame_in_order_even_when_slow(tiny, tmp_path):
    x, _ = tiny["heldout"]
    video = write_video(tmp_path / "v.avi", x[:15], scale=2)
    seen = []
    s = run(tiny["bundle"], source=str(video), print_every=0, handle_signals=False,
            on_result=lambda r, f: (seen.append(r.source_frame), time.sleep(0.01)))
    assert seen == list(range(15)) and s.dropped == 0


def test_a_file_s_queued_frames_are_taken_together_in_order_up_to_a_limit(tiny, tmp_path):
    """The one-thread loop takes what the decoder has read ahead in one go; --max-frames stays exact."""
    x, _ = tiny["heldout"]
    video = write_video(tmp_path / "v.avi", x[:40], scale=2)
    with open_source(str(video)) as src:
        time.sleep(0.5)  # the decoder fills its read-ahead queue (16 frames)
        first = src.read_queued(2.0, limit=3)
        rest = src.read_queued(2.0)
        assert [f.index for f in first] == [0, 1, 2] and len(rest) > 1
        seen = [f.index for f in first + rest]
        while True:
            try:
                seen += [f.index for f in src.read_queued(2.0)]
            except EndOfSource:
                break
    assert seen == list(range(40))
    for n in (1, 17, 33):
        s = run(tiny["bundle"], source=str(video), print_every=0, handle_signals=False, max_frames=n, loop=True)
        assert s.frames == n and s.reason == "max frames"


def test_folder_natural_order_and_unreadable_files(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    for name in ("10.png", "2.png", "1.png"):
        cv2.imwrite(str(tmp_path / name), img)
    (tmp_path / "3.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    src = FolderSource(tmp_path).open()
    try:
        files = []
        with pytest.raises(EndOfSource):
            while True:
                f = src.read(2.0)
                assert f is not None
                files.append(f.file)
        assert files == ["1.png", "2.png", "10.png"] and src.unreadable == 1
    finally:
        src.close()


def test_describe_and_open_errors(tmp_path):
    assert describe_source("0") == "camera" and describe_source("/dev/video0") == "camera"
    assert describe_source("rtsp://127.0.0.1/x") == "stream" and describe_source("http://127.0.0.1:1/") == "stream"
    assert describe_source("picamera2") == "picamera2" and describe_source(str(tmp_path)) == "folder"
    assert describe_source(str(tmp_path / "nope.mp4")) == "missing"
    with pytest.raises(SourceError, match="no such file"):
        open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path))


def test_picamera2_n_picks_the_pi_camera_by_number(tmp_path):
    """`--source picamera2:1` is the second Pi camera (picamera2's `Picamera2(1)`); without the package the
    source is still made (it imports picamera2 only when it opens), so the number is checked here."""
    assert describe_source("picamera2:1") == "picamera2" and describe_source("PiCamera2:0") == "picamera2"
    assert describe_source("picamera2:x") == "missing"
    cam = open_source("picamera2:1", start=False)
    assert cam.kind == "picamera2" and cam.camera_num == 1 and cam.name == "picamera2:1"
    assert open_source("picamera2", start=False).camera_num == 0
    with pytest.raises(SourceError, match=r"picamera2\[:N\]"):
        open_source("picamera2:one")


@pytest.mark.parametrize("size, one_thread", [((128, 128), True), ((800, 608), False)])
def test_a_file_of_small_frames_is_decoded_on_one_thread(tmp_path, size, one_thread):
    """FFmpeg's per-core decoding threads cost more than they save on small frames and take CPU from
    inference; frames above VGA keep them. Every frame still arrives, in order."""
    import os

    from edgelite.device.sources.videocapture import VideoSource

    clip = tmp_path / "c.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
    for i in range(12):
        w.write(np.full((size[1], size[0], 3), i * 20, np.uint8))
    w.release()
    src = VideoSource(str(clip), live=False)
    cap = src._open_capture()
    threads = cap.get(cv2.CAP_PROP_N_THREADS)
    cap.release()
    assert (threads == 1) if one_thread else (threads == min(os.cpu_count(), 16) or os.cpu_count() == 1), threads
    with open_source(str(clip), model_size=(32, 32)) as s:
        means = [int(round(float(s.read(2.0).image.mean()) / 20)) for _ in range(12)]
    assert means == list(range(12))


def test_a_camera_frame_opencv_4_11_left_flat_is_restored_or_refused():
    """OpenCV 4.11's V4L2 backend (the newest wheel for Bookworm's numpy) returns BGR24/YUYV frames as one flat
    row (opencv#27166): seen on the emulated Bookworm Pi, where vivid's frames were classified as noise and every
    --save-uncertain JPEG failed. The source restores them from the capture's width, height and FOURCC."""
    import cv2
    import numpy as np

    from edgelite.device.errors import SourceFailed
    from edgelite.device.sources.videocapture import unflatten_as

    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (48, 64, 3), np.uint8)
    assert np.array_equal(unflatten_as(bgr.reshape(1, -1), 64, 48, "BGR3"), bgr)
    assert np.array_equal(unflatten_as(bgr[..., ::-1].reshape(1, -1), 64, 48, "RGB3"), bgr)
    yuyv = rng.integers(0, 256, (48, 64, 2), np.uint8)
    assert np.array_equal(unflatten_as(yuyv.reshape(1, -1), 64, 48, "YUYV"), cv2.cvtColor(yuyv, cv2.COLOR_YUV2BGR_YUYV))
    with pytest.raises(SourceFailed, match=r"'NV12' frames of shape .* `v4l2-ctl --set-fmt-video"):
        unflatten_as(np.zeros((1, 64 * 48 * 3 // 2), np.uint8), 64, 48, "NV12")


def test_reopening_an_exclusive_camera_waits_for_the_old_capture_thread():
    """A V4L2 camera is exclusive: a capture thread that close() left blocked in a read still holds it, and
    opening it again then fails "device busy" (VIDIOC_REQBUFS: EBUSY, seen on the emulated Pi) - each reconnect
    attempt wasted, until the loop gave up. The source now waits for that thread (`reopen_wait`) first."""
    import threading

    from edgelite.device.errors import SourceFailed
    from edgelite.device.frames import Frame
    from edgelite.device.sources.base import Source

    class ExclusiveCamera(Source):
        reopen_wait = 5.0
        device = threading.Lock()

        def _run(self, put, stop):
            if not self.device.acquire(blocking=False):
                raise SourceFailed("/dev/video0: VIDIOC_REQBUFS: Device or resource busy", at_open=True)
            try:
                put(Frame(image=np.zeros((4, 4, 3), np.uint8), index=0, timestamp=time.time()))
                stop.wait()
                time.sleep(1.5)  # the driver call the thread is in ends only now
            finally:
                self.device.release()

    cam = ExclusiveCamera("/dev/video0")
    cam.open()
    assert cam.read(timeout=5) is not None
    cam.close(timeout=0.1)  # the loop does not wait: the thread is left blocked, holding the device
    cam.open()
    try:
        assert cam.read(timeout=5) is not None  # not SourceFailed("... busy")
    finally:
        cam.close(timeout=3)
