"""`edgelite run --source rtsp://...` against a real RTSP server (GStreamer's gst-rtsp-server on 127.0.0.1):
frames classified, the server going away and coming back, --rtsp-transport, credentials never printed."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from edgelite.device import run
from edgelite.device.errors import RunError, SourceUnavailable
from edgelite.device.sources.rtsp import FFMPEG_OPTIONS_ENV, redact_url
from tests.device import devicekit, rtspkit

_why = rtspkit.unavailable()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")

USER, PASSWORD = "viewer", "Pa55-rtsp-word"


@pytest.fixture(scope="module")
def frames(tiny, tmp_path_factory):
    return rtspkit.write_frames(tmp_path_factory.mktemp("rtsp") / "frames", tiny["heldout"][0][:40])


@pytest.fixture(autouse=True)
def _ffmpeg_env(monkeypatch):
    monkeypatch.delenv(FFMPEG_OPTIONS_ENV, raising=False)  # --rtsp-transport sets it: restore after each test


def test_redact_url():
    assert redact_url("rtsp://u:p@h:554/s?x=1") == "rtsp://u:***@h:554/s?x=1"
    assert redact_url("rtsp://u@h/s") == "rtsp://u@h/s" and redact_url("clip.mp4") == "clip.mp4"
    # issue #22, hole 3: FFmpeg splits userinfo at the LAST '@', and IP cameras take passwords in the query
    assert redact_url("rtsp://admin:p@ssw0rd@cam/s") == "rtsp://admin:***@cam/s"
    assert redact_url("http://cam/video.cgi?user=admin&pwd=hunter2&Password=x&token=t#f") == \
        "http://cam/video.cgi?user=admin&pwd=***&Password=***&token=***#f"
    assert redact_url("rtsp://cam/s?channel=1&subtype=0") == "rtsp://cam/s?channel=1&subtype=0"
    assert redact_url("rtsp://h/a@b") == "rtsp://h/a@b"  # an @ in the path is no password


def test_rtsp_stream_is_classified_and_the_password_never_printed(frames, bundle_dir, tmp_path):
    port = devicekit.free_port()
    with rtspkit.RtspServer(frames, port, user=USER, password=PASSWORD) as srv:
        http = devicekit.free_port()
        proc = devicekit.start_cmd(bundle_dir, "--source", srv.url(USER, PASSWORD), "--max-frames", "40",
                                   "--json", tmp_path / "r.jsonl", "--http", f"127.0.0.1:{http}")
        health = None
        end = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < end:
            try:
                health = urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=2).read().decode()
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=2).read().decode()
                page = urllib.request.urlopen(f"http://127.0.0.1:{http}/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    results = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(results) == 40 and {r["label"] for r in results} <= {"red", "green", "blue", "yellow"}
    assert len({r["label"] for r in results}) > 1  # the stream's images, not one stuck frame
    assert health is not None and "source" not in json.loads(health)  # /healthz needs no token: no URL there
    assert f'source="rtsp://{USER}:***@127.0.0.1:{port}/cam"' in metrics
    for text in (out, err, health, metrics, page, (tmp_path / "r.jsonl").read_text()):
        assert PASSWORD not in text


def test_wrong_rtsp_password_is_refused_without_printing_it(frames, bundle_dir):
    with rtspkit.RtspServer(frames, devicekit.free_port(), user=USER, password=PASSWORD) as srv:
        p = devicekit.run_cmd(bundle_dir, "--source", srv.url(USER, "not-" + PASSWORD), "--max-reconnects", "1",
                              "--backoff", "0.1", "--open-timeout", "3", timeout=60)
    assert p.returncode == 75  # a live source that never opened: systemd tries again later
    assert "not-" + PASSWORD not in p.stdout + p.stderr and "***@" in p.stderr


@pytest.mark.parametrize("server", ["tcp", "udp"])
def test_rtsp_transport_reaches_ffmpeg(frames, bundle_dir, server):
    """A server that offers only one transport: the matching --rtsp-transport gets frames, the other none."""
    with rtspkit.RtspServer(frames, devicekit.free_port(), protocols=server) as srv:
        for transport in ("tcp", "udp"):
            kw = dict(source=srv.url(), rtsp_transport=transport, max_frames=5, max_reconnects=0, open_timeout=5,
                      stall_timeout=5, print_every=0, handle_signals=False)
            if transport == server:
                s = run(bundle_dir, **kw)
                assert (s.exit_code, s.frames) == (0, 5), (server, transport, s.reason)
            else:  # never opened, not a service: at once, exit 75, with what was found
                with pytest.raises(SourceUnavailable, match="accepts connections but the stream did not open") as e:
                    run(bundle_dir, **kw)
                assert e.value.exit_code == 75


def test_rtsp_transport_is_only_for_rtsp(bundle_dir, heldout_video):
    with pytest.raises(RunError, match="--rtsp-transport is for rtsp:// sources"):
        run(bundle_dir, source=str(heldout_video), rtsp_transport="udp", max_frames=1, print_every=0)


def test_rtsp_server_goes_away_and_comes_back(frames, bundle_dir):
    port = devicekit.free_port()
    srv = rtspkit.RtspServer(frames, port).start()
    stop, stamps, out = threading.Event(), [], {}
    t = threading.Thread(target=lambda: out.setdefault("s", run(
        bundle_dir, source=srv.url(), stall_timeout=2, open_timeout=3, backoff=0.5, max_reconnects=10,
        print_every=0, stop=stop, on_result=lambda r, f: stamps.append(time.monotonic()), handle_signals=False)))
    t.start()
    try:
        _wait(lambda: len(stamps) >= 20, 30)
        srv.stop()
        time.sleep(4.0)
        n_during = len(stamps)
        srv.start()
        assert _wait(lambda: len(stamps) > n_during + 10, 40), "no frames after the server came back"
        back_after = next(x for x in stamps[n_during:]) - srv.ready_at
    finally:
        stop.set()
        t.join(30)
        srv.stop()
    s = out["s"]
    assert s.exit_code == 0 and s.reconnects >= 1
    assert back_after < 10.0  # backoff delay in force + one RTSP handshake


def _wait(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False
