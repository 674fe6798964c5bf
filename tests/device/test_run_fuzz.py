"""200 byte-mutated and truncated model files, each loaded in its own process: every one is refused with
ModelLoadError or runs cleanly; none crashes, hangs, or escapes as another exception."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.device import devicekit

# Imports the runtimes once, then forks one child per file: a crash (SIGSEGV, abort) kills only that
# child, and the parent reports how it ended. Fork keeps 200 processes cheap.
WORKER = r"""
import json, os, sys, signal
import numpy as np
import ai_edge_litert.interpreter, onnxruntime  # noqa: F401  (loaded before fork)
from tests.device import devicekit
from edgelite.bundle import InputSpec
from edgelite.device.pipeline import Pipeline
from edgelite.device.runtime import ModelLoadError, load_model
from edgelite.device.frames import Frame

def child(path):
    try:
        m = load_model(path, num_threads=1)
        spec = InputSpec(height=m.input_height, width=m.input_width)
        pipe = Pipeline(m, spec, [str(i) for i in range(m.num_classes)], top_k=3)
        for img in (np.zeros((48, 64, 3), np.uint8), np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)):
            r = pipe.process(Frame(img, 0, 0.0))
            assert len(r.top_k) <= 3
        os.write(1, b"ran\n")
        return 0
    except ModelLoadError as e:
        os.write(1, ("refused " + str(e)[:200] + "\n").encode())
        return 3
    except BaseException as e:
        os.write(1, ("exception " + type(e).__name__ + ": " + str(e)[:200] + "\n").encode())
        return 4

results = {}
for path in sys.argv[1:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r); os.dup2(w, 1)
        signal.alarm(20)  # a hang becomes SIGALRM, reported as a crash
        os._exit(child(path))
    os.close(w)
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        results[path] = ["crash", f"signal {os.WTERMSIG(status)}"]
    else:
        code = os.WEXITSTATUS(status)
        results[path] = [{0: "ran", 3: "refused"}.get(code, "exception"), out.decode(errors="replace").strip()]
print(json.dumps(results))
"""


def mutants(src: bytes, n: int, rng: np.random.Generator, stem: str, out_dir, suffix: str) -> list:
    paths = []
    for i in range(n):
        b = bytearray(src)
        if i % 5 == 0:  # truncated: anywhere from empty to one byte short
            b = b[: int(rng.integers(0, len(b)))]
        else:  # 1-16 random bytes, half of the time in the first 1 KiB where the tables and offsets are
            hi = min(len(b), 1024) if i % 2 else len(b)
            for _ in range(int(rng.integers(1, 17))):
                b[int(rng.integers(0, hi))] = int(rng.integers(0, 256))
        p = out_dir / f"{stem}_{i:03d}{suffix}"
        p.write_bytes(bytes(b))
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def corrupt_models(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("mutants")
    rng = np.random.default_rng(1234)
    f = tiny["files"]
    return (mutants(f["int8"].read_bytes(), 80, rng, "int8", out, ".tflite")
            + mutants(f["fp32"].read_bytes(), 60, rng, "fp32", out, ".tflite")
            + mutants(f["onnx"].read_bytes(), 60, rng, "onnx", out, ".onnx"))


def test_200_corrupt_models_refused_or_run_cleanly(corrupt_models):
    assert len(corrupt_models) == 200
    p = subprocess.run([sys.executable, "-c", WORKER, *map(str, corrupt_models)], capture_output=True, text=True,
                       timeout=600, env=devicekit.cli_env(), cwd=devicekit.REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    results = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(results) == 200
    bad = {k: v for k, v in results.items() if v[0] not in ("ran", "refused")}
    kinds = {}
    for outcome, _ in results.values():
        kinds[outcome] = kinds.get(outcome, 0) + 1
    print("outcomes:", kinds)
    assert not bad, f"{len(bad)} files crashed or raised something else: {list(bad.items())[:5]}"
    assert kinds.get("refused", 0) >= 50  # truncations and header damage must be caught


def test_corrupt_models_through_the_cli(corrupt_models, tiny, heldout_folder):
    """The same files through `edgelite run`: exit 0 or a one-line error (exit 2), never a traceback."""
    labels = tiny["bundle"] / "labels.txt"
    for path in corrupt_models[::20]:  # 10 of them: int8, fp32 and onnx, truncated and mutated
        p = devicekit.run_cmd(path, "--labels", labels, "--source", heldout_folder, "--max-frames", "2",
                              "--print-every", "0", timeout=60)
        assert p.returncode in (0, 2), (path.name, p.returncode, p.stderr[-1500:])
        assert "Traceback" not in p.stderr, (path.name, p.stderr[-1500:])
        if p.returncode == 2:
            assert "edgelite run: error:" in p.stderr
