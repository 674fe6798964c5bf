"""--strategy multiworker: two real worker processes on 127.0.0.1 train one model together."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_local_workers_train_one_model(shapes_dir, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "mw"
    procs = []
    for i in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                   CUDA_VISIBLE_DEVICES="")
        cmd = [sys.executable, "-m", "edgelite", "train", str(shapes_dir), "--out", str(out), "--strategy",
               "multiworker", "--backbone", "mobilenet_v2", "--weights", "none", "--image-size", "32",
               "--epochs", "2", "--fine-tune-epochs", "0", "--batch-size", "8", "--seed", "3"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        try:
            outputs.append(p.communicate(timeout=400)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("multiworker training did not finish in 400 s")
    assert [p.returncode for p in procs] == [0, 0], "\n----\n".join(o[-3000:] for o in outputs)
    # the chief (worker 0) wrote the run; the other worker left nothing behind in it
    assert (out / "model.keras").is_file() and (out / "metrics.json").is_file()
    m = json.loads((out / "metrics.json").read_text())
    assert m["images"]["train"] > 0 and len(m["test"]["per_class"]) == 3
    assert "run         " in outputs[0] and "run         " not in outputs[1]
