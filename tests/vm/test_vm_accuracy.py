"""The int8 model's top-1 on the held-out images, on the emulated Pi's CPU (a Pi 5's Cortex-A76 on Trixie: XNNPACK
runs its dot-product int8 kernels there) against the same `edgelite bench` on this x86 machine.

Integer kernels are exact up to their requantisation rounding, which differs between kernel families: a
borderline image may flip, so the figures must agree within one image of the 100, and most per-image answers
must be the same.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .vmkit import DIR, PI_CPU, ROOT, TIMINGS, env

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]
BENCH = ["bench", "--formats", "int8", "--threads", "1", "--runs", "10", "--warmup", "1", "--no-progress", "--json", "-"]


def row(text: str) -> tuple[dict, dict]:
    doc = json.loads(text[text.index("{"):])
    (r,) = [r for r in doc["rows"] if r["name"] == "int8"]
    return r, doc["environment"]


def bits(correct: str) -> list[bool]:
    n, hexs = correct.split(":")
    v = int(hexs, 16)
    width = len(hexs) * 4
    return [bool(v >> (width - 1 - i) & 1) for i in range(int(n))]


def test_int8_top1_on_the_pi_cpu_matches_this_machine(vm, deployed, tiny_bundle):
    here = subprocess.run([sys.executable, "-m", "edgelite", *BENCH[:1], str(tiny_bundle), *BENCH[1:]],
                          capture_output=True, text=True, cwd=ROOT, env=env(), timeout=600)
    assert here.returncode == 0, here.stderr[-2000:]
    x86, _ = row(here.stdout)
    rel = json.loads(vm.ssh(f"cat {DIR}/current/release.json").stdout)
    py = f"{DIR}/venvs/{rel['venv']}/bin/python"
    r = vm.ssh(f"{py} -m edgelite {BENCH[0]} {DIR}/bundles/{rel['bundle']} {' '.join(BENCH[1:])}", check=False, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    pi, envi = row(r.stdout)
    assert envi["machine"] == "aarch64" and pi["status"] == "ok" and pi["images"] == x86["images"] == 100, (envi, pi)
    if PI_CPU == "cortex-a76":
        assert "asimddp" in envi["cpu_vector_extensions"], envi["cpu_vector_extensions"]
    same = sum(a == b for a, b in zip(bits(pi["correct"]), bits(x86["correct"]), strict=True))
    TIMINGS[f"int8 top-1 {PI_CPU} {pi['top1']:.2f} vs x86 {x86['top1']:.2f} ({same}/100 same; p50 ms)"] = pi["latency_ms"]["p50"]
    assert abs(pi["top1"] - x86["top1"]) <= 0.01 and same >= 98, (pi["top1"], x86["top1"], same)
