"""The preview server: endpoints, token, viewer cap, bind rules; and the page in headless Chromium."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from edgelite.device import run
from edgelite.device.errors import RunError
from edgelite.device.frames import Frame
from edgelite.device.outputs.preview import PreviewServer, PreviewState, is_loopback, parse_address
from edgelite.device.pipeline import Prediction, Result
from tests.device import devicekit


def get(url, token=None, timeout=5.0, bearer=False):
    req = urllib.request.Request(url)
    if token and bearer:
        req.add_header("Authorization", f"Bearer {token}")
    elif token:
        req = urllib.request.Request(url + ("&" if "?" in url else "?") + f"token={token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@contextlib.contextmanager
def running_loop(tiny, source, **options):
    """The loop in a thread (Python API), with its preview on a free 127.0.0.1 port; stopped on exit."""
    port = devicekit.free_port()
    stop = threading.Event()
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("summary", run(
        tiny["bundle"], source=str(source), http=f"127.0.0.1:{port}", stop=stop, handle_signals=False,
        print_every=0, loop=True, realtime=True, **options)), daemon=True)
    t.start()
    base = f"http://127.0.0.1:{port}"
    token = options.get("token")
    try:
        wait_healthy(base)
        yield base, token
    finally:
        stop.set()
        t.join(10)
        assert not t.is_alive(), "the loop did not stop"
    assert box["summary"].exit_code == 0


def test_endpoints(tiny, heldout_video):
    with running_loop(tiny, heldout_video, format="int8") as (base, _):
        code, headers, body = get(base + "/healthz")
        h = json.loads(body)
        assert code == 200 and h["status"] == "ok" and h["model"] == "int8" and h["frames"] > 0
        assert h["last_result_age_s"] < 10 and h["fps"] > 0 and "source" not in h  # #11: a URL may hold a password

        code, headers, body = get(base + "/metrics")
        assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = body.decode()
        assert f'source="{heldout_video}"' in text  # the source as the loop shows it (passwords redacted)
        values = {ln.split(" ")[0]: float(ln.split(" ")[-1]) for ln in text.splitlines() if ln and ln[0] != "#"}
        assert values["edgelite_frames_total"] > 0 and values["edgelite_up"] == 1
        assert "# TYPE edgelite_inference_seconds histogram" in text
        buckets = [v for k, v in values.items() if k.startswith("edgelite_inference_seconds_bucket")]
        assert buckets == sorted(buckets) and buckets[-1] == values["edgelite_inference_seconds_count"]
        assert 'edgelite_info{model="int8",format="tflite"' in text

        code, _, body = get(base + "/result.json")
        r = json.loads(body)
        assert code == 200 and r["label"] in devicekit.LABELS and len(r["top_k"]) == 3

        code, headers, body = get(base + "/frame.jpg")
        img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert code == 200 and img.shape[0] >= 360  # 96 px frames are enlarged for a legible overlay

        code, _, body = get(base + "/")
        assert code == 200 and b'src="stream.mjpg"' in body
        assert get(base + "/nope")[0] == 404

        with urllib.request.urlopen(base + "/stream.mjpg", timeout=5) as r:
            assert r.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
            head = r.read(200)
            assert head.startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ")
            n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            start = head.index(b"\r\n\r\n") + 4
            jpg = head[start:] + r.read(n - (len(head) - start))
            assert cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR) is not None


def test_token_from_the_environment(tiny, heldout_video, monkeypatch):
    """EDGELITE_TOKEN keeps the token out of the command line (and so out of `ps` and unit files)."""
    monkeypatch.setenv("EDGELITE_TOKEN", "from-env")
    with running_loop(tiny, heldout_video) as (base, _):
        assert get(base + "/metrics")[0] == 401
        assert get(base + "/metrics", token="from-env")[0] == 200


def test_token_and_viewer_cap(tiny, heldout_video):
    with running_loop(tiny, heldout_video, token="s3cret", max_viewers=1) as (base, token):
        assert get(base + "/")[0] == 401
        assert get(base + "/metrics", token="wrong")[0] == 401
        assert get(base + "/metrics", token=token)[0] == 200
        assert get(base + "/result.json", token=token, bearer=True)[0] == 200
        assert get(base + "/healthz")[0] == 200  # probes need no token
        code, _, body = get(base + "/", token=token)
        assert code == 200 and b"stream.mjpg?token=s3cret" in body

        first = urllib.request.urlopen(base + f"/stream.mjpg?token={token}", timeout=5)
        try:
            first.read(10)
            code, headers, _ = get(base + "/stream.mjpg", token=token)
            assert code == 503 and headers["Retry-After"]
            assert json.loads(get(base + "/healthz")[2])["viewers"] == 1
        finally:
            first.close()
        end = time.monotonic() + 5  # the slot frees once the server notices the viewer left
        while time.monotonic() < end and json.loads(get(base + "/healthz")[2])["viewers"]:
            time.sleep(0.1)
        with urllib.request.urlopen(base + f"/stream.mjpg?token={token}", timeout=5) as r:
            assert r.status == 200


def test_bind_rules():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address(":0") == ("127.0.0.1", 0)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("host:port", "70000", "[::1]9000"):
        with pytest.raises(RunError):
            parse_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("camera.local")
    with pytest.raises(RunError, match="--token"):
        PreviewServer("0.0.0.0:0", info={})
    with pytest.raises(RunError, match="--token"):
        PreviewServer("camera.local:8080", info={})
    PreviewServer("0.0.0.0:0", info={}, token="t")  # allowed with a token (not started: tests stay on loopback)


def test_health_goes_stale():
    state = PreviewState({"model": "int8"}, stale_after=0.05)
    assert state.health()[0] == 503 and state.health()[1]["status"] == "starting"
    res = Result(frame=0, source_frame=0, timestamp=0.0, top_k=[Prediction(0, "red", 1.0)], label="red", score=1.0,
                 changed=True, previous=None, timings_ms=dict.fromkeys(
                     ("capture", "preprocess", "inference", "postprocess", "total"), 1.0), fps=10.0)
    state.publish(Frame(np.zeros((4, 4, 3), np.uint8), 0, 0.0), res)
    assert state.health()[0] == 200
    time.sleep(0.1)
    code, body = state.health()
    assert code == 503 and body["status"] == "stale"


def _result(frame: int, label: str) -> Result:
    return Result(frame=frame, source_frame=frame, timestamp=0.0, top_k=[Prediction(0, label, 1.0)], label=label,
                  score=1.0, changed=True, previous=None, timings_ms=dict.fromkeys(
                      ("capture", "preprocess", "inference", "postprocess", "total"), 1.0), fps=10.0)


def test_the_page_panel_shows_the_frame_the_stream_shows_and_a_file_is_not_live():
    """Issue 25 (smaller): the page's side panel polled the newest result while the stream showed an older
    frame's overlay, so the two disagreed; and the header said "live" for a video file. The panel now asks for
    the result drawn on the frame the stream sent, and the header names what is playing."""
    srv = PreviewServer(f"127.0.0.1:{devicekit.free_port()}", info={"model": "int8", "source": "clip.mp4",
                                                                   "source_kind": "file"}, stale_after=5).start()
    try:
        base = srv.url.rstrip("/")
        srv.publish(Frame(np.zeros((8, 8, 3), np.uint8), 0, 0.0), _result(0, "red"))
        assert get(base + "/frame.jpg")[0] == 200  # the stream sends frame 0 with red drawn on it
        srv.publish(Frame(np.zeros((8, 8, 3), np.uint8), 1, 0.0), _result(1, "blue"))
        assert json.loads(get(base + "/result.json?frame=shown")[2])["label"] == "red"
        assert json.loads(get(base + "/result.json")[2])["label"] == "blue"  # the API: still the newest
        page = get(base + "/")[2].decode()
        assert 'frame=shown' in page and '"playing a video file"' in page and '= "live"' not in page
    finally:
        srv.close()


@pytest.mark.chromium
def test_preview_page_in_headless_chromium(tiny, tmp_path, artifacts):
    """The page a person opens: frames and labels visible. The screenshot is kept as a test artifact."""
    from edgelite.device.video import write_video

    x, y = tiny["heldout"]
    video = write_video(tmp_path / "cam.avi", x[:30], scale=6, fps=30.0, repeat=3)
    port = devicekit.free_port()
    proc = devicekit.start_cmd(tiny["bundle"], "--source", video, "--loop", "--realtime", "--http",
                               f"127.0.0.1:{port}", "--token", "tok", "--print-every", "0")
    shot = artifacts / "preview.png"
    shot.unlink(missing_ok=True)
    profile = tmp_path / "chromium-profile"
    cmd = [devicekit.chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=900,600", "--timeout=4000"]
    url = f"http://127.0.0.1:{port}/?token=tok"
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        subprocess.run([*cmd, f"--screenshot={shot}", url], capture_output=True, timeout=90)
        dom = subprocess.run([*cmd, "--dump-dom", url], capture_output=True, text=True, timeout=90).stdout
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0
    # the labels table and the FPS were filled in by the page's script from /result.json
    assert '<table id="labels"><tbody><tr><td>' in dom
    assert any(f"<td>{label}</td>" in dom for label in devicekit.LABELS)
    assert 'id="status">playing a video file<' in dom  # issue 25: a file is not "live"
    # the screenshot shows a video frame: the pixels of one of the class colours, inside the stream image
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (600, 900)
    stream = img[40:460, 0:450].astype(int)
    colours = [np.array(devicekit.COLOURS_RGB[c][::-1]) for c in devicekit.LABELS]
    hits = max(int((np.abs(stream - c).sum(axis=2) < 90).sum()) for c in colours)
    assert hits > 2000, "no video frame visible in the screenshot"


def wait_healthy(base: str, timeout: float = 30.0, frames: int = 3) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            code, _, body = get(base + "/healthz", timeout=1)
            if code == 200 and json.loads(body)["frames"] >= frames:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{base} never became healthy")
