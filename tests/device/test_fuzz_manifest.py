"""200 structured mutations of a real bundle's edgelite.json, each run through `edgelite run` in its own
forked process: every one either runs (a valid bundle) or ends with ONE error line and exit 2 (4 when a
well-formed size or sha256 does not match the file); none hangs (a per-case alarm), none leaves a traceback."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.device import devicekit

# Imports edgelite and the runtimes once, then forks one child per bundle: the child runs the real CLI
# entry point (`edgelite.cli.main`) with stderr captured; a hang becomes SIGALRM, reported as "hang".
WORKER = r"""
import json, os, signal, sys, traceback
import ai_edge_litert.interpreter, onnxruntime, cv2  # noqa: F401  (loaded before fork)
from edgelite import cli
source = sys.argv[1]
results = {}
for bundle in sys.argv[2:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r); os.dup2(w, 2); os.dup2(w, 1)
        signal.alarm(15)
        try:
            code = cli.main(["run", bundle, "--source", source, "--max-frames", "1", "--quiet"])
        except BaseException:
            traceback.print_exc()
            code = 99
        sys.stderr.flush(); sys.stdout.flush()
        os._exit(code)
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    results[bundle] = [code, out.decode(errors="replace")]
print(json.dumps(results))
"""

HOSTILE = [None, True, False, 0, -1, 1, 2**63, -(2**63), 10**400, 1e308, float("nan"), "", "x", "int8",
           "../outside/model.tflite", "/etc/passwd", "/dev/zero", "model_fp32.tflite/..", ".", "labels.txt",
           "heldout.npz", "a" * 5000, "\u202e\u00e9\U0001f600", "\ud800", [], {}, [1], [None], {"a": 1},
           ["red", "green"], "f" * 64, "0" * 64]


def _paths(obj, prefix=()):
    """Every key path in the manifest (dict keys and list indices)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value, delete=False):
    for k in path[:-1]:
        obj = obj[k]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


def mutate(manifest: dict, i: int, rng: np.random.Generator) -> bytes:
    """The i-th mutation: a whole-file one (1 in 10) or 1-3 field mutations (retype, delete, hostile value)."""
    if i % 10 == 0:
        whole = [b"", b"[]", b"null", b"{", b"\xff\xfe\x00garbage", b"[" * 100000 + b"]" * 100000,
                 json.dumps({**manifest, "schema": 2}).encode(), json.dumps(manifest)[: len(json.dumps(manifest)) // 2].encode(),
                 b'{"schema": 1, "labels": "red", "input": [], "models": [1]}',
                 json.dumps({**manifest, "models": [], "labels": []}).encode()]
        return whole[(i // 10) % len(whole)]
    m = copy.deepcopy(manifest)
    for _ in range(int(rng.integers(1, 4))):
        paths = [p for p in _paths(m) if p]
        path = paths[int(rng.integers(0, len(paths)))]
        if rng.random() < 0.2 and isinstance(path[-1], str):
            _set(m, path, None, delete=True)
        else:
            _set(m, path, copy.deepcopy(HOSTILE[int(rng.integers(0, len(HOSTILE)))]))
    return json.dumps(m, allow_nan=True).encode()


@pytest.fixture(scope="module")
def mutated_bundles(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("manifests")
    src = tiny["bundle"]
    # a file outside every bundle with a real model's bytes: a manifest pointing at it must still be refused
    (out / "outside").mkdir()
    shutil.copy(src / "model_fp32.tflite", out / "outside" / "model.tflite")
    manifest = json.loads((src / "edgelite.json").read_text())
    rng = np.random.default_rng(11)
    bundles = []
    for i in range(200):
        b = out / f"b{i:03d}"
        shutil.copytree(src, b)
        (b / "edgelite.json").write_bytes(mutate(manifest, i, rng))
        if i % 50 == 7:
            (b / "labels.txt").write_bytes(b"red\n\xff\xfegreen\n")
        bundles.append(b)
    return bundles


def test_200_mutated_manifests_run_or_fail_in_one_line(mutated_bundles, heldout_folder):
    p = subprocess.run([sys.executable, "-c", WORKER, str(heldout_folder), *map(str, mutated_bundles)],
                       capture_output=True, text=True, timeout=600, env=devicekit.cli_env(), cwd=devicekit.REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    results = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(results) == 200
    kinds: dict[str, int] = {}
    bad = []
    for bundle, (code, out) in results.items():
        kinds[str(code)] = kinds.get(str(code), 0) + 1
        errors = [ln for ln in out.splitlines() if ln.startswith("edgelite run: error:")]
        if code == 0 and not errors and "Traceback" not in out:
            continue
        if code in (2, 4) and len(errors) == 1 and "Traceback" not in out and len(errors[0]) < 600:
            continue
        bad.append((bundle.rsplit("/", 1)[-1], code, out[-800:]))
    print("exit codes:", kinds)
    assert not bad, f"{len(bad)} manifests hung, crashed or left a traceback: {bad[:3]}"
    assert kinds.get("2", 0) >= 100  # most mutations break the manifest and must be refused
