"""`edgelite run --format auto` (the default), issue #24: the device measures which validated model and thread
count run fastest, caches the decision per device + bundle, shows it on /healthz and /metrics, and
`edgelite bench --pick` prints the same trial. `--format NAME` still forces one, without a trial.

All real: the tiny bundle (LiteRT fp32 + int8, ONNX Runtime fp32), the real CLI in a subprocess, the real
preview server on a free 127.0.0.1 port.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from edgelite.bundle import Bundle
from edgelite.device.machine import default_threads as thread_counts
from tests.device import devicekit
from tests.device.test_run_preview import get, running_loop

MODELS = ("fp32", "int8", "onnx")


def copy_bundle(tiny, tmp_path, name="bundle"):
    return shutil.copytree(tiny["bundle"], tmp_path / name)


def cli_env(cache):
    env = devicekit.cli_env()
    env["EDGELITE_PICK_CACHE"] = str(cache)
    return env


def run(root, source, cache, *args):
    p = devicekit.run_cmd(root, "--source", source, "--max-frames", "2", "--print-every", "0", *args,
                          env=cli_env(cache))
    assert p.returncode == 0, p.stderr
    return p


def pick_line(p) -> str:
    lines = [ln for ln in p.stderr.splitlines() if "format auto:" in ln]
    assert len(lines) == 1, p.stderr
    return lines[0]


def fail_accuracy_gate(root, name="fp32"):
    """Mark `name` as failed at convert time and make its file unloadable: trying it would be loud."""
    b = Bundle.load(root)
    e = b.entry(name)
    e.status, e.error = "validation failed", "top-1 0.412 is 0.5 below the float model's"
    (root / e.path).write_bytes(b"not a model at all, and no TFL3 either")
    b.save()


def test_auto_measures_every_validated_model_and_runs_the_fastest(tiny, heldout_video, tmp_path):
    root, cache = copy_bundle(tiny, tmp_path), tmp_path / "cache"
    p = run(root, heldout_video, cache)
    (path,) = cache.glob("*.json")
    pick = json.loads(path.read_text())
    tried = {(r["name"], r["threads"]) for r in pick["rows"]}
    assert tried == {(n, t) for n in MODELS for t in thread_counts()}  # every validated model x threads
    fastest = min(pick["rows"], key=lambda r: r["p50_ms"])
    assert (pick["model"], pick["threads"]) == (fastest["name"], fastest["threads"])
    line = pick_line(p)
    assert f"format auto: {pick['model']} x{pick['threads']} threads, fastest of {len(tried)} measured" in line
    assert "(trial " in line and pick["trial_s"] < 5.0  # the start-up it costs (issue #24: at most 5 s)
    assert f"model {pick['model']} (" in p.stderr and f"{pick['threads']} threads" in p.stderr


def test_a_restart_reuses_the_pick_and_a_new_bundle_is_measured_again(tiny, heldout_video, tmp_path):
    root, cache = copy_bundle(tiny, tmp_path), tmp_path / "cache"
    first = pick_line(run(root, heldout_video, cache))
    (path,) = cache.glob("*.json")
    stamp = path.stat().st_mtime_ns
    again = pick_line(run(root, heldout_video, cache))
    assert "cached from" in again and "(trial" not in again
    assert again.split(" (")[0] == first.split(" (")[0]  # the same model, threads and reason
    assert path.stat().st_mtime_ns == stamp and len(list(cache.glob("*.json"))) == 1
    b = Bundle.load(root)  # a re-converted bundle: its manifest (and so its sha256) changes
    b.info["converted"] = "again"
    b.save()
    assert "(trial " in pick_line(run(root, heldout_video, cache))
    assert len(list(cache.glob("*.json"))) == 2


def test_a_model_that_failed_the_accuracy_gate_never_runs(tiny, heldout_video, tmp_path):
    root, cache = copy_bundle(tiny, tmp_path), tmp_path / "cache"
    fail_accuracy_gate(root, "fp32")
    p = run(root, heldout_video, cache)
    (path,) = cache.glob("*.json")
    pick = json.loads(path.read_text())
    assert {r["name"] for r in pick["rows"]} == {"int8", "onnx"} and pick["never_run"] == ["fp32"]
    assert all(r["status"] == "ok" for r in pick["rows"])
    assert "model fp32" not in p.stderr and "fastest of 4 measured" in pick_line(p)


def test_a_cache_naming_a_failed_model_is_not_obeyed(tiny, heldout_video, tmp_path):
    root, cache = copy_bundle(tiny, tmp_path), tmp_path / "cache"
    fail_accuracy_gate(root, "fp32")
    run(root, heldout_video, cache)
    (path,) = cache.glob("*.json")
    path.write_text(json.dumps(json.loads(path.read_text()) | {"model": "fp32", "threads": 1}))
    p = run(root, heldout_video, cache)
    assert "(trial " in pick_line(p) and "model fp32" not in p.stderr
    assert json.loads(path.read_text())["model"] != "fp32"


def test_format_name_forces_a_model_without_a_trial(tiny, heldout_video, tmp_path):
    cache = tmp_path / "cache"
    for name, shown in (("int8", "int8"), ("onnx", "onnx"), ("tflite", "fp32")):
        p = run(tiny["bundle"], heldout_video, cache, "--format", name)
        assert f"model {shown} (" in p.stderr and "format auto" not in p.stderr
    assert not cache.exists()  # nothing measured, nothing cached


def test_healthz_and_metrics_say_what_runs_and_why(tiny, heldout_video, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELITE_PICK_CACHE", str(tmp_path / "cache"))
    with running_loop(tiny, heldout_video) as (base, _):
        h = json.loads(get(base + "/healthz")[2])
        text = get(base + "/metrics")[2].decode()
    pick = h["pick"]
    assert pick["how"] == "trial" and pick["model"] == h["model"] and pick["why"].startswith("fastest of 6 measured")
    assert f"{pick['threads']} threads" in h["runtime"] and 0 < pick["trial_s"] < 5
    assert len(pick["candidates"]) == 6 and all(c["p50_ms"] > 0 for c in pick["candidates"])
    assert (f'edgelite_pick_info{{model="{pick["model"]}",threads="{pick["threads"]}",how="trial",'
            f'why="{pick["why"]}"}} 1') in text
    p50s = [ln for ln in text.splitlines() if ln.startswith("edgelite_pick_candidate_p50_seconds{")]
    assert len(p50s) == 6 and f'model="{pick["model"]}"' in " ".join(p50s)
    assert any(ln.startswith("edgelite_pick_trial_seconds ") for ln in text.splitlines())


def test_healthz_says_a_forced_format_was_forced(tiny, heldout_video):
    with running_loop(tiny, heldout_video, format="onnx") as (base, _):
        h = json.loads(get(base + "/healthz")[2])
    assert h["model"] == "onnx" and h["pick"] == {"model": "onnx", "threads": None, "how": "forced",
                                                  "why": "--format onnx"}


def bench(*args):
    return subprocess.run([sys.executable, "-m", "edgelite", "bench", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=devicekit.cli_env(), cwd=devicekit.REPO)


def test_bench_pick_prints_each_candidate_and_the_decision(tiny, tmp_path):
    root = copy_bundle(tiny, tmp_path)
    fail_accuracy_gate(root, "fp32")
    p = bench(root, "--pick")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    for name in ("int8", "onnx"):
        for t in thread_counts():
            assert any(ln.split()[:3] == [name, str(t), "ok"] for ln in lines), p.stdout
    assert any(ln.split()[:3] == ["fp32", "-", "validation"] for ln in lines), p.stdout
    (decision,) = [ln for ln in lines if ln.startswith("pick: ")]
    assert "fastest of 4 measured" in decision and "never run (failed at convert time): fp32" in decision
    doc = json.loads(bench(root, "--pick", "--json", "-").stdout)
    (picked,) = [r for r in doc["rows"] if r.get("picked")]
    assert (picked["name"], picked["threads"]) == (doc["pick"]["model"], doc["pick"]["threads"])
    assert picked["latency_ms"]["p50"] == min(r["latency_ms"]["p50"] for r in doc["rows"] if r["status"] == "ok")


def test_bench_pick_refuses_what_it_does_not_measure(tiny):
    p = bench(tiny["bundle"], "--pick", "--min-top1", "0.9")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "--pick times the candidates of `run --format auto` only; drop --min-top1" in p.stderr
