"""The preview web server of `edgelite run --http`: standard library `http.server`, one thread per client.

=================  ===========================================================================
``/``              a small page: the live stream, the top-k labels, FPS and stage timings
``/stream.mjpg``   the annotated frames as multipart JPEG (at most `max_fps`, `max_viewers` at once)
``/frame.jpg``     the latest annotated frame
``/result.json``   the latest result (the same object as a `--json` line)
``/healthz``       JSON: status, model, fps, frames, age of the last result; 503 when stale or starting
``/metrics``       Prometheus text format
=================  ===========================================================================

It binds 127.0.0.1 unless told otherwise and refuses another address without a token. With a token
every path except ``/healthz`` needs ``?token=T`` or ``Authorization: Bearer T``; ``/healthz`` stays
open so a supervisor or load balancer can probe it, and says nothing a viewer could not see.
JPEG encoding happens in the viewer threads, once per new frame however many viewers there are, and
never when nobody watches: the camera loop only hands over references.

Hostile clients: a connection gets a thread only once its whole request head has arrived, and only
while fewer than MAX_CONNECTIONS requests are served (`preview_server.py`). Every socket has a timeout, so a stream
viewer that stops reading is dropped after SOCKET_TIMEOUT s; every response closes its connection.
``/healthz`` says which release serves (``$EDGELITE_RELEASE``) and 503 "stopping" once the loop stops;
it never shows the source (a camera URL may carry a password).
"""

from __future__ import annotations

import hmac
import html
import http.server
import json
import logging
import socket
import threading
import time
from urllib.parse import parse_qs, quote, urlsplit

import cv2

from edgelite.device.errors import RunError
from edgelite.device.frames import Frame
from edgelite.device.outputs.base import Output
from edgelite.device.outputs.display import draw_overlay
from edgelite.device.outputs.preview_page import PAGE, PLAYING
from edgelite.device.outputs.preview_server import (
    MAX_CONNECTIONS,
    SOCKET_TIMEOUT,
    STREAM_SNDBUF,
    GatedHTTPServer,
    serve_gated,
    stop_gated,
)
from edgelite.device.pipeline import STAGES, Result
from edgelite.http_address import is_loopback, parse_http_address

log = logging.getLogger("edgelite.device")

MIN_PREVIEW_HEIGHT = 360
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def parse_address(value: str) -> tuple[str, int]:
    """'8080' | 'HOST:8080' | '[::1]:8080' -> (host, port); a bare port binds 127.0.0.1 (`edgelite.http_address`'s rule)."""
    return parse_http_address(value, error=RunError)


def _prom_label(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def pick_metrics(pick: dict | None, metric) -> None:
    """The model pick (`run --format auto`) through `metric(name, kind, help, samples)`: how and why, the
    trial's cost and each candidate's median."""
    if not pick:
        return
    metric("edgelite_pick_info", "gauge", "How the running model was chosen (trial, cached, forced, edgetpu).",
           [({k: pick.get(k) if pick.get(k) is not None else "" for k in ("model", "threads", "how", "why")}, 1)])
    if pick.get("trial_s") is not None:
        metric("edgelite_pick_trial_seconds", "gauge", "Seconds the measured trial took (when it was measured).",
               [({}, pick["trial_s"])])
    rows = [r for r in pick.get("candidates") or [] if r.get("p50_ms") is not None]
    if rows:
        metric("edgelite_pick_candidate_p50_seconds", "gauge", "Median invoke time of each candidate in the trial.",
               [({"model": r["name"], "threads": r["threads"]}, f"{r['p50_ms'] / 1e3:.9f}") for r in rows])


class PreviewState:
    """What the loop publishes and the handlers read. All access under one lock; no copies of frames."""

    def __init__(self, info: dict, stale_after: float, stopping: threading.Event | None = None):
        self.info = dict(info)  # model, format, runtime, source (redacted), labels, release
        self.stopping = stopping or threading.Event()  # set when the loop stops: /healthz says 503 "stopping"
        self.stale_after = stale_after
        self.started = time.monotonic()
        self.cond = threading.Condition()
        self.seq = 0
        self.frame: Frame | None = None
        self.result: Result | None = None
        self.result_mono = 0.0
        self.frames = 0
        self.dropped = 0
        self.reconnects = 0
        self.status = "starting"
        self.viewers = 0
        self.stage_sums = dict.fromkeys(STAGES, 0.0)
        self.hist = [0] * (len(LATENCY_BUCKETS) + 1)
        self.hist_sum = 0.0
        self._jpeg_seq = -1
        self._jpeg = b""
        self.shown_result: Result | None = None  # the result drawn on the last frame encoded for the stream
        self._encode_lock = threading.Lock()
        self.collectors: list = []  # callables -> extra Prometheus lines (e.g. the MQTT output's counters)
        # objects with a `problem` (a reason, or None): an output that cannot do its job while the loop still
        # classifies (--save-uncertain on a full or read-only card) makes /healthz "degraded", still HTTP 200:
        # no reason to restart the service or roll the release back
        self.degraders: list = []

    def publish(self, frame: Frame, result: Result) -> None:
        with self.cond:
            self.frame, self.result = frame, result
            self.result_mono = time.monotonic()
            self.frames += 1
            self.dropped = result.dropped
            self.status = "ok"
            for k in STAGES:
                self.stage_sums[k] += result.timings_ms[k]
            s = result.timings_ms["inference"] / 1e3
            self.hist_sum += s
            for i, b in enumerate(LATENCY_BUCKETS):
                if s <= b:
                    self.hist[i] += 1
                    break
            else:
                self.hist[-1] += 1
            self.seq += 1
            self.cond.notify_all()

    def set_status(self, status: str, reconnects: int | None = None) -> None:
        with self.cond:
            self.status = status
            if reconnects is not None:
                self.reconnects = reconnects

    def jpeg(self) -> tuple[int, bytes]:
        """(seq, JPEG of the latest annotated frame); encoded at most once per frame."""
        with self.cond:
            seq, frame, result = self.seq, self.frame, self.result
        with self._encode_lock:
            if seq != self._jpeg_seq and frame is not None:
                image = frame.image
                if image.shape[0] < MIN_PREVIEW_HEIGHT:  # small frames: enlarge so the overlay text is legible
                    f = -(-MIN_PREVIEW_HEIGHT // image.shape[0])
                    image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_NEAREST)
                ok, buf = cv2.imencode(".jpg", draw_overlay(image, result), [cv2.IMWRITE_JPEG_QUALITY, 80])
                if ok:
                    self._jpeg_seq, self._jpeg, self.shown_result = seq, buf.tobytes(), result
            return self._jpeg_seq, self._jpeg

    def health(self) -> tuple[int, dict]:
        with self.cond:
            age = time.monotonic() - self.result_mono if self.result is not None else None
            status = self.status
            if status == "ok" and age is not None and age > self.stale_after:
                status = "stale"
            if self.stopping.is_set():
                status = "stopping"  # a supervisor must not take a process on its way out for the new one
            code = 200 if status == "ok" else 503
            degraded = [d.problem for d in self.degraders if getattr(d, "problem", None)]
            if status == "ok" and degraded:
                status = "degraded"
            body = {
                "status": status,
                "release": self.info.get("release"),
                "model": self.info.get("model"),
                "format": self.info.get("format"),
                "runtime": self.info.get("runtime"),
                "fps": round(self.result.fps, 2) if self.result else 0.0,
                "frames": self.frames,
                "dropped": self.dropped,
                "reconnects": self.reconnects,
                "last_result_age_s": round(age, 3) if age is not None else None,
                "uptime_s": round(time.monotonic() - self.started, 3),
                "viewers": self.viewers,
                "pick": self.info.get("pick"),  # which model runs and why (edgelite.device.pick.summary)
            }
            if degraded:
                body["degraded"] = degraded
        return code, body

    def metrics(self) -> str:
        _, h = self.health()
        with self.cond:
            frames, sums = self.frames, dict(self.stage_sums)
            hist, hist_sum = list(self.hist), self.hist_sum
        lines = []

        def metric(name, kind, help_, samples):
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lab = "{" + ",".join(f'{k}="{_prom_label(v)}"' for k, v in labels.items()) + "}" if labels else ""
                lines.append(f"{name}{lab} {value}")

        info = {k: self.info.get(k) or "" for k in ("model", "format", "runtime", "source")}
        metric("edgelite_info", "gauge", "The loaded model and source.", [(info, 1)])
        metric("edgelite_up", "gauge", "1 while results are fresh.", [({}, int(h["status"] == "ok"))])
        metric("edgelite_frames_total", "counter", "Frames classified.", [({}, frames)])
        metric("edgelite_dropped_frames_total", "counter", "Frames a live source dropped while the loop was busy.",
               [({}, h["dropped"])])
        metric("edgelite_reconnects_total", "counter", "Times the source was reopened.", [({}, h["reconnects"])])
        metric("edgelite_fps", "gauge", "Rolling frames per second.", [({}, h["fps"])])
        age = h["last_result_age_s"]
        metric("edgelite_last_result_age_seconds", "gauge", "Seconds since the last result (-1 before the first).",
               [({}, age if age is not None else -1)])
        metric("edgelite_stage_seconds_mean", "gauge", "Mean seconds per frame in each stage.",
               [({"stage": k}, f"{(v / frames / 1e3) if frames else 0.0:.9f}") for k, v in sums.items()])
        cum, samples = 0, []
        for b, n in zip(LATENCY_BUCKETS, hist[:-1], strict=True):
            cum += n
            samples.append(({"le": f"{b:g}"}, cum))
        samples.append(({"le": "+Inf"}, cum + hist[-1]))
        metric("edgelite_inference_seconds", "histogram", "Inference time per frame.", [])
        lines.extend(f"edgelite_inference_seconds_bucket{{le=\"{lab['le']}\"}} {v}" for lab, v in samples)
        lines.append(f"edgelite_inference_seconds_sum {hist_sum:.9f}")
        lines.append(f"edgelite_inference_seconds_count {frames}")
        metric("edgelite_viewers", "gauge", "Preview stream viewers connected.", [({}, h["viewers"])])
        pick_metrics(h["pick"], metric)
        for collect in self.collectors:
            lines.extend(collect())
        return "\n".join(lines) + "\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "edgelite-preview"
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT  # StreamRequestHandler puts it on the socket: no read or write blocks longer

    # -- plumbing
    def log_message(self, fmt, *args):  # route the access log to debug, not stderr
        log.debug("preview %s %s", self.address_string(), fmt % args)

    @property
    def preview(self) -> PreviewServer:
        return self.server.preview  # type: ignore[attr-defined]

    def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")  # an idle keep-alive connection would hold a thread
        self.close_connection = True
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj) -> None:
        self._send(code, (json.dumps(obj) + "\n").encode(), "application/json")

    def _token_given(self, query: dict) -> str:
        t = query.get("token", [""])[0]
        if not t:
            auth = self.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                t = auth[7:].strip()
        return t

    def _authorized(self, query: dict) -> bool:
        token = self.preview.token
        return not token or hmac.compare_digest(self._token_given(query).encode(), token.encode())

    # -- routes
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        state = self.preview.state
        if url.path == "/healthz":
            code, body = state.health()
            return self._json(code, body)
        if not self._authorized(query):
            return self._send(401, b"token required: add ?token=... or an Authorization: Bearer header\n",
                              "text/plain; charset=utf-8", {"WWW-Authenticate": "Bearer"})
        if url.path in ("/", "/index.html"):
            token = self._token_given(query)
            qs_raw = f"?token={quote(token, safe='')}" if token else ""
            qs, qs_json = html.escape(qs_raw, quote=True), json.dumps(qs_raw)
            page = PAGE.format(title=html.escape(str(state.info.get("model"))), model=html.escape(
                f"{state.info.get('model')} · {state.info.get('runtime')} · {state.info.get('source')}"),
                qs=qs, qs_json=qs_json, playing=json.dumps(PLAYING.get(state.info.get("source_kind"), "live")))
            return self._send(200, page.encode(), "text/html; charset=utf-8")
        if url.path == "/result.json":
            with state.cond:
                result = state.result
            if query.get("frame") == ["shown"] and state.shown_result is not None:
                result = state.shown_result  # the page's panel: the result drawn on the frame the stream sent
            return self._json(200, result.to_dict() if result else {})
        if url.path == "/metrics":
            return self._send(200, state.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        if url.path == "/frame.jpg":
            _, jpg = state.jpeg()
            if not jpg:
                return self._send(503, b"no frame yet\n", "text/plain; charset=utf-8")
            return self._send(200, jpg, "image/jpeg")
        if url.path == "/stream.mjpg":
            return self._stream()
        return self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _stream(self):
        srv, state = self.preview, self.preview.state
        if self.command == "HEAD":  # headers only: a HEAD must never start the endless body
            return self._send(200, b"", "multipart/x-mixed-replace; boundary=frame")
        with state.cond:
            if state.viewers >= srv.max_viewers:
                full = True
            else:
                full = False
                state.viewers += 1
        if full:
            return self._send(503, f"too many viewers (max {srv.max_viewers})\n".encode(), "text/plain; charset=utf-8",
                              {"Retry-After": "5"})
        self.close_connection = True
        try:
            # a few frames of kernel buffer: a viewer that stops reading blocks a write soon, and is dropped
            # SOCKET_TIMEOUT s later instead of holding a stream slot for ever
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            last, period, next_t = -1, 1.0 / srv.max_fps, 0.0
            while not srv.stopping.is_set():
                with state.cond:
                    if state.seq == last:
                        state.cond.wait(0.5)  # publish() notifies; the timeout re-checks stopping
                    if state.seq == last:
                        continue
                wait = next_t - time.monotonic()
                if wait > 0 and srv.stopping.wait(wait):
                    break
                last, jpg = state.jpeg()
                if not jpg:
                    continue
                next_t = time.monotonic() + period
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg))
                self.wfile.write(jpg)
                self.wfile.write(b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            pass  # the viewer went away
        finally:
            with state.cond:
                state.viewers -= 1


class PreviewServer(Output):
    """Start with `start()`, feed with `publish(frame, result)`, stop with `close()`."""

    def __init__(self, address: str, *, info: dict, token: str | None = None, max_viewers: int = 4,
                 max_fps: float = 15.0, stale_after: float = 5.0, stopping: threading.Event | None = None):
        host, port = parse_address(address)
        if not is_loopback(host) and not token:
            raise RunError(f"--http {address}: binding {host} exposes the camera to the network; "
                           "set --token (or EDGELITE_TOKEN) or bind 127.0.0.1")
        if max_viewers < 1:
            raise RunError("--max-viewers must be at least 1")
        self.host, self.port = host, port
        self.token = token or None
        self.max_viewers, self.max_fps = max_viewers, max(0.5, max_fps)
        self.state = PreviewState(info, stale_after, stopping)
        self.stopping = threading.Event()
        self._server: GatedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> PreviewServer:
        try:
            self._server, self._thread = serve_gated(self.host, self.port, _Handler, MAX_CONNECTIONS + self.max_viewers,
                                                     "preview", preview=self)
        except OSError as e:
            raise RunError(f"--http {self.host}:{self.port}: cannot listen ({e.strerror or e})") from None
        self.port = self._server.server_address[1]
        return self

    def publish(self, frame: Frame, result: Result) -> None:
        self.state.publish(frame, result)

    # the loop treats the preview as one more output
    def write(self, result: Result, frame: Frame) -> None:
        self.state.publish(frame, result)

    def close(self) -> None:
        self.stopping.set()
        with self.state.cond:
            self.state.cond.notify_all()
        stop_gated(self._server, self._thread)
        self._server = self._thread = None
