"""Test-time model factory for the device tests: a tiny real classifier, its real TFLite/ONNX exports
and a real bundle, built with TensorFlow in seconds.

The classes are coloured shapes on a noisy grey background; the colour decides the class, the shape,
position, size and noise vary. A small conv net with a Rescaling layer inside learns them in a few
seconds, so the loop's accuracy on a video of held-out images is a meaningful check, not a tautology.

This module is imported only by tests (it imports TensorFlow); `edgelite/device` never sees it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests import kit

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "edgelite-tests"  # gitignored; survives between local runs

LABELS = kit.LABELS
COLOURS_RGB = kit.COLOURS_RGB
SIZE = kit.SIZE  # model input (height = width)


def synth_images(n: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """n RGB uint8 images (n, size, size, 3) and their label indices."""
    import cv2

    rng = np.random.default_rng(seed)
    ys = rng.integers(0, len(LABELS), n)
    xs = np.empty((n, size, size, 3), np.uint8)
    for i, y in enumerate(ys):
        bg = int(rng.integers(60, 200))
        img = np.full((size, size, 3), bg, np.int16)
        img += rng.integers(-25, 26, (size, size, 3), dtype=np.int16)
        colour = np.array(COLOURS_RGB[LABELS[y]], np.int16) + rng.integers(-30, 31, 3, dtype=np.int16)
        colour = tuple(int(c) for c in np.clip(colour, 0, 255))
        c = (int(rng.integers(size // 4, 3 * size // 4)), int(rng.integers(size // 4, 3 * size // 4)))
        r = int(rng.integers(size // 6, size // 3))
        canvas = np.clip(img, 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            cv2.circle(canvas, c, r, colour, -1)
        else:
            cv2.rectangle(canvas, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), colour, -1)
        xs[i] = canvas
    return xs, ys.astype(np.int64)


def build_and_export(out: Path, *, seed: int = 0, onnx: bool = True) -> dict:
    """Train the tiny classifier and write fp32 / int8 TFLite (+ ONNX) files and a bundle into `out`.

    Returns {"bundle": Path, "heldout": (x, y), "keras_top1": float, "files": {name: Path}}.
    """
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train = synth_images(1200, seed=seed + 1)
    x_test, y_test = synth_images(120, seed=seed + 2)
    model = kit.train_tiny_cnn(x_train, y_train, classes=len(LABELS), seed=seed, lr=3e-3, epochs=6)
    keras_top1 = kit.keras_top1(model, x_test, y_test)

    files: dict[str, Path] = {}
    files["fp32"] = out / "model_fp32.tflite"
    files["fp32"].write_bytes(kit.fp32_tflite(model))

    def representative():
        # one frame spanning 0..255, as real photos do, so the uint8 input gets scale 1 / zero point 0
        full = np.zeros((1, SIZE, SIZE, 3), np.float32)
        full[:, : SIZE // 2] = 255.0
        yield [full]
        for img in x_train[:100]:
            yield [img[None].astype(np.float32)]

    files["int8"] = out / "model_int8.tflite"
    files["int8"].write_bytes(kit.int8_tflite(model, representative))
    if onnx:
        files["onnx"] = kit.export_onnx(model, out / "model.onnx")

    kit.write_bundle(out, files, labels=LABELS, top1=keras_top1, heldout=(x_test, y_test),
                     info={"run": "tests/device", "backbone": "tiny-cnn"})
    return {"bundle": out, "heldout": (x_test, y_test), "keras_top1": keras_top1, "files": files}


def write_folder(path: Path, images: np.ndarray, labels: np.ndarray | None = None, *, scale: int = 3) -> Path:
    """PNG files 00000.png, 00001.png, ... (lossless) in frame order."""
    import cv2

    path.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        cv2.imwrite(str(path / f"{i:05d}.png"), kit.upscaled_bgr(img, scale))
    return path


# ------------------------------------------------------------------------------------------ 224 x 224
# EfficientNet-Lite0's layout: (expand ratio, channels, repeats, stride, kernel) per stage; ReLU6, no
# squeeze-excite. Random weights: speed and memory, which is what the figures measure, do not depend on them.
LITE0_BLOCKS = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
                (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]


def build_lite0_int8(path: Path, *, size: int = 224, classes: int = 1000) -> Path:
    """EfficientNet-Lite0-shaped classifier (4.7 M parameters) as a full-int8 .tflite (uint8 in/out), ~30 s."""
    _, keras = kit.tf_keras()

    L = keras.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3))
    x = L.Rescaling(1 / 127.5, offset=-1)(inp)
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(32, 3, 2, padding="same", use_bias=False)(x)))
    cin = 32
    for expand, ch, repeats, stride, k in LITE0_BLOCKS:
        for i in range(repeats):
            s = stride if i == 0 else 1
            h = x
            if expand != 1:
                h = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(cin * expand, 1, use_bias=False)(h)))
            h = L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(k, s, padding="same", use_bias=False)(h)))
            h = L.BatchNormalization()(L.Conv2D(ch, 1, use_bias=False)(h))
            if s == 1 and cin == ch:
                h = L.Add()([x, h])
            x, cin = h, ch
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(1280, 1, use_bias=False)(x)))
    x = L.Dense(classes, activation="softmax")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, x)

    def representative():
        rng = np.random.default_rng(0)
        img = rng.integers(0, 256, (1, size, size, 3)).astype(np.float32)
        img[0, 0, 0] = 0.0
        img[0, 0, 1] = 255.0
        yield [img]

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(kit.int8_tflite(model, representative))
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------------ processes
def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def cli_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    # `edgelite run` without -v sets these before it imports cv2; a test that ran the CLI in this process left
    # them here, and every later subprocess would inherit the silence (`run -v` then shows no FFmpeg line)
    env.pop("OPENCV_LOG_LEVEL", None)
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    env.update(extra)
    return env


def run_cmd(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m edgelite run ARGS` in a subprocess; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "edgelite", "run", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env or cli_env(), cwd=REPO)


def start_cmd(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgelite", "run", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or cli_env(), cwd=REPO, **kw)


# ------------------------------------------------------------------------------------------ a network camera
class MjpegServer:
    """A multipart-JPEG "network camera" on 127.0.0.1 whose connections stall on cue.

    `plan[i]` says what connection i gets: N frames then a stall (the socket stays open, silent), or
    None for frames until the server stops. Connections past the plan stall at once. Bounded: at most
    `max_frames` frames per connection, at `fps`.
    """

    def __init__(self, images_rgb, plan: list[int | None], *, fps: float = 100.0, max_frames: int = 3000,
                 first_delay: float = 0.0):
        import http.server
        import threading

        import cv2

        self.jpegs = [cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(i), cv2.COLOR_RGB2BGR))[1].tobytes()
                      for i in images_rgb]
        self.plan, self.fps, self.max_frames = list(plan), fps, max_frames
        self.first_delay = first_delay  # s of silence before each connection's first frame (a camera starting up)
        self.connections = 0
        self.sent = 0
        self.stopping = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                n_conn = outer.connections
                outer.connections += 1
                budget = outer.plan[n_conn] if n_conn < len(outer.plan) else 0
                budget = outer.max_frames if budget is None else min(budget, outer.max_frames)
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    if outer.first_delay:
                        self.wfile.flush()
                        if outer.stopping.wait(outer.first_delay):
                            return
                    for k in range(budget):
                        if outer.stopping.is_set():
                            return
                        jpg = outer.jpegs[k % len(outer.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                                         + jpg + b"\r\n")
                        self.wfile.flush()
                        outer.sent += 1
                        outer.stopping.wait(1.0 / outer.fps)
                    if n_conn < len(outer.plan) and outer.plan[n_conn] is None:
                        return  # served everything: close the stream
                    outer.stopping.wait(30)  # stall: connected but silent
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
