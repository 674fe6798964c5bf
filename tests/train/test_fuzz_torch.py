"""200 mutated `.pth` files (legacy and zip; hostile sizes, strides, offsets and counts, flipped bytes,
truncations, deflated records) read in one process under a 1 GiB address-space limit: each gives
TorchFileError or valid weights, nothing else escapes, and the process's peak RSS stays small."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from tests.train.torchkit import Storage, pth_bytes, sample_state_dict

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORKER = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # a bomb becomes MemoryError, reported below
import numpy as np
from edgelite.train.torch_weights import TorchFileError, load_legacy_torch_state_dict
results = {}
for path in sys.argv[1:]:
    try:
        sd = load_legacy_torch_state_dict(path)
        assert sd and all(isinstance(v, np.ndarray) for v in sd.values())
        results[path] = ["weights", sum(v.nbytes for v in sd.values())]
    except TorchFileError as e:
        results[path] = ["refused", str(e)[:200]]
    except BaseException as e:
        results[path] = ["escaped", f"{type(e).__name__}: {str(e)[:200]}"]
# VmHWM: this process's own peak (ru_maxrss would carry a big parent's peak across fork + exec)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"results": results, "maxrss_kb": hwm}))
"""

HOSTILE_INTS = [0, -1, 1, 7, 1 << 20, 1 << 31, 1 << 62, 1 << 70, -(1 << 63)]
HOSTILE_OTHER = ["8", 4.0, None, (), (1, 2, 3, 4, 5), True, b"\x00"]


def _structured(i: int, rng: np.random.Generator) -> bytes:
    sd = sample_state_dict()
    t = list(sd.values())[int(rng.integers(0, len(sd)))]
    pool = HOSTILE_INTS + HOSTILE_OTHER
    value = pool[int(rng.integers(0, len(pool)))]
    field = ["size", "stride", "offset", "numel", "dim"][i % 5]
    if field == "offset":
        t.offset = value
    elif field == "numel":
        t.storage.numel = value
    elif field == "dim" and isinstance(value, int) and t.size:
        k = int(rng.integers(0, len(t.size)))
        t.size = tuple(value if j == k else n for j, n in enumerate(t.size))
    else:
        setattr(t, field, value if isinstance(value, tuple) else (value,) * max(1, len(t.size)))
    if i % 7 == 0:  # the bomb: a stride-0 view of one stored float
        t.storage, t.offset, t.size, t.stride = Storage("9", np.ones(1, np.float32)), 0, (1 << 20, 1 << 20), (0, 0)
    return pth_bytes(sd, zip_format=bool(i % 2), compress=i % 11 == 0)


def mutants(tmp_path) -> list:
    rng = np.random.default_rng(7)
    legacy, zipped = (pth_bytes(sample_state_dict(), zip_format=z) for z in (False, True))
    paths = []
    for i in range(200):
        if i % 4 == 0:
            data = _structured(i, rng)
        else:
            b = bytearray(zipped if i % 2 else legacy)
            if i % 4 == 1:
                b = b[: int(rng.integers(0, len(b)))]
            else:
                for _ in range(int(rng.integers(1, 9))):
                    b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
            data = bytes(b)
        p = tmp_path / f"m{i:03d}.pth"
        p.write_bytes(data)
        paths.append(p)
    return paths


def test_200_mutated_pth_files_are_refused_or_read(tmp_path):
    paths = mutants(tmp_path)
    env = {**os.environ, "PYTHONPATH": REPO, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", WORKER, *map(str, paths)], capture_output=True, text=True,
                       timeout=120, env=env, cwd=REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    results = out["results"]
    assert len(results) == 200
    kinds: dict[str, int] = {}
    for kind, _ in results.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    print("outcomes:", kinds, "peak RSS MiB:", out["maxrss_kb"] // 1024)
    escaped = {k: v for k, v in results.items() if v[0] != "refused" and v[0] != "weights"}
    assert not escaped, f"{len(escaped)} files raised something else: {list(escaped.items())[:5]}"
    big = {k: v for k, v in results.items() if v[0] == "weights" and v[1] > 16 << 20}
    assert not big, f"a few KB of file became more than 16 MiB of weights: {list(big.items())[:3]}"
    assert kinds.get("refused", 0) >= 100
    assert out["maxrss_kb"] < 200 * 1024, f"peak RSS {out['maxrss_kb'] // 1024} MiB"
