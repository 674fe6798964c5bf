"""`edgelite bench` on real runtimes: LiteRT and onnxruntime running real .tflite / .onnx files built by
TensorFlow, a real bundle, a real video through the camera loop, and a real sshd on 127.0.0.1."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgelite.bench import report as R
from edgelite.bench import run as B
from edgelite.bench import stats, worker
from edgelite.bench.env import environment_stem, governor_warning, read_environment
from edgelite.bench.errors import BenchUsageError
from edgelite.errors import EXIT_CONNECT, EXIT_REMOTE
from tests.bench import bench_fixtures as bf
from tests.sshkit import free_port

RUNS, WARMUP = 30, 3


def _result(path: Path) -> dict:
    """A bench result JSON, checked as `bench` checks one fetched from a device."""
    data = json.loads(Path(path).read_text())
    R.check_result(data, str(path))
    return data


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def bench_models(tmp_path_factory):
    return bf.build_models(tmp_path_factory.mktemp("bench_models"))["files"]


@pytest.fixture(scope="session")
def bench_bundle(bench_models, tmp_path_factory):
    return bf.write_bundle(tmp_path_factory.mktemp("bench") / "bundle", bench_models)


@pytest.fixture(scope="session")
def bench_result(bench_bundle):
    """One isolated run over every format × threads 1,2, shared by the assertions below."""
    return B.bench([str(bench_bundle)], threads="1,2", runs=RUNS, warmup=WARMUP)


def _copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_manifest(bundle: Path, fn) -> None:
    p = bundle / "edgelite.json"
    m = json.loads(p.read_text())
    fn(m)
    p.write_text(json.dumps(m))


# ---------------------------------------------------------------------------------------- statistics
def test_summarize_known_samples():
    s = stats.summarize(np.arange(1, 101, dtype=float))
    assert s["n"] == 100
    assert s["min"] == 1 and s["max"] == 100
    assert s["p50"] == pytest.approx(50.5) and s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    assert s["mean"] == pytest.approx(50.5)
    assert s["std"] == pytest.approx(np.std(np.arange(1, 101), ddof=1), abs=1e-4)  # 29.0115
    one = stats.summarize([3.25])
    assert one["std"] == 0.0 and one["p50"] == one["p99"] == 3.25
    skew = stats.summarize([1.0] * 98 + [10.0, 1000.0])
    assert skew["p50"] == 1.0 and skew["p99"] == pytest.approx(10.0 + 0.01 * 990) and skew["max"] == 1000.0
    with pytest.raises(ValueError):
        stats.summarize([])


def test_parse_options():
    assert B.parse_threads("1,2,4,2") == [1, 2, 4]
    assert B.parse_threads(None) == B.default_threads()
    assert B.default_threads(4) == [1, 2, 4] and B.default_threads(2) == [1, 2] and B.default_threads(1) == [1]
    for bad in ("0", "two", "1,-2"):
        with pytest.raises(BenchUsageError):
            B.parse_threads(bad)
    assert B.parse_formats("all") is None and B.parse_formats("int8,fp32") == ["int8", "fp32"]
    with pytest.raises(BenchUsageError, match="unknown format"):
        B.parse_formats("int4")


# --------------------------------------------------------------------------------------------- rows
def test_rows_per_format_and_threads(bench_result, bench_bundle):
    rows = bench_result["rows"]
    assert [(r["name"], r["threads"]) for r in rows] == [(n, t) for n in ("fp32", "int8", "onnx") for t in (1, 2)]
    for r in rows:
        assert r["status"] == "ok", r
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert lat["n"] == RUNS and len(r["samples_ms"]) == RUNS
        assert lat["p50"] == pytest.approx(np.percentile(r["samples_ms"], 50), abs=1e-3)
        assert r["fps"] == pytest.approx(1000 / lat["mean"], rel=1e-2)
        assert r["load_ms"] > 0 and r["first_ms"] > 0
        assert r["bytes"] == (bench_bundle / Path(r["file"]).name).stat().st_size
        assert r["size_mb"] == pytest.approx(r["bytes"] / 1e6)
        # isolated workers: a peak per model, above what the model itself added
        assert r["peak_rss_mb"] > r["model_rss_mb"] > 0
    assert {r["runtime"].split()[0].split(".")[0] for r in rows} == {"ai_edge_litert", "onnxruntime"}
    # int8 weights are a quarter of fp32's (the tiny graph's overhead keeps the file ratio higher)
    size = {r["name"]: r["bytes"] for r in rows}
    assert size["int8"] < size["fp32"]


def test_accuracy_matches_heldout_labels(bench_result):
    """The hand-wired model is exact on these images and N_WRONG held-out labels are deliberately wrong:
    top-1 must be exactly ACCURACY for every runtime and precision."""
    target = bench_result["targets"][0]
    assert target["data"] == {"source": "heldout", "images": bf.N_HELDOUT}
    for r in bench_result["rows"]:
        assert r["top1"] == pytest.approx(bf.ACCURACY) and r["images"] == bf.N_HELDOUT
    second = [r for r in bench_result["rows"] if r["threads"] == 2]
    assert all(r["top1_threads"] == 1 for r in second)  # scored once per format, reused



def test_every_scored_row_has_a_paired_delta_against_the_float_row(bench_result):
    """Every format gets the same images right here: Δ 0 with a zero-width interval, shown as not
    distinguishable from zero, in the table, JSON and CSV."""
    for r in bench_result["rows"]:
        assert r["delta_reference"] == "fp32" and r["delta_top1"] == 0 and r["delta_ci"] == [0.0, 0.0]
        assert r["delta_distinguishable"] is False
    table = R.format_table(bench_result)
    assert "Δ top-1 [95 % CI]" in table and "+0.0 [+0.0, +0.0] ~0" in table
    assert "Δ top-1: points against the fp32 row on the same images" in table
    rows = list(csv.DictReader(io.StringIO(R.to_csv(bench_result))))
    assert all(float(row["delta_top1"]) == 0 and row["delta_ci_lo"] == "0.0" for row in rows)


def test_delta_is_paired_against_the_fp32_row_of_the_same_target():
    from edgelite.stats import pack_correct

    ref = np.ones(1000, bool)
    worse = ref.copy()
    worse[:13] = False  # 13 images lost, none gained: -1.3 points, distinguishable from 0
    noisy = ref.copy()
    noisy[:3] = False  # 3 lost: -0.3, but the interval reaches 0
    rows = [{"target": "a", "name": "int8", "precision": "int8", "correct": pack_correct(worse)},
            {"target": "a", "name": "fp32", "precision": "fp32", "correct": pack_correct(ref)},
            {"target": "a", "name": "fp16", "precision": "fp16", "correct": pack_correct(noisy)},
            {"target": "b", "name": "x", "precision": "int8", "correct": pack_correct(worse)},
            {"target": "a", "name": "onnx", "precision": "fp32", "top1": None}]
    R.add_deltas({"rows": rows})
    int8, fp32, fp16, other, unscored = rows
    assert int8["delta_top1"] == pytest.approx(-1.3) and int8["delta_ci"][1] < 0 and int8["delta_distinguishable"]
    assert fp16["delta_top1"] == pytest.approx(-0.3) and fp16["delta_ci"][0] < 0 < fp16["delta_ci"][1]
    assert not fp16["delta_distinguishable"] and fp32["delta_top1"] == 0
    assert "delta_top1" not in other  # its own target's rows only: b has no float row, so no Δ (not 0 vs itself)
    assert "delta_top1" not in unscored


def _with_float_reference(src: Path, dst: Path, float_hits: np.ndarray | None, top1: float) -> Path:
    """A copy of the bench bundle whose manifest carries convert's float Keras reference (per-image hits
    when `float_hits` is given, else only the top-1, as manifests written before issue 25)."""
    from edgelite.stats import pack_correct

    _copy_bundle(src, dst)
    m = json.loads((dst / "edgelite.json").read_text())
    m["info"]["reference"] = {"model": "keras float", "images": bf.N_HELDOUT, "top1": top1, "per_class": {}}
    if float_hits is not None:
        m["info"]["reference"]["correct"] = pack_correct(float_hits)
    (dst / "edgelite.json").write_text(json.dumps(m))
    return dst


def test_int8_alone_shows_its_drop_against_the_float_model_of_the_manifest(bench_bundle, tmp_path):
    """Issue 25, item 1: `bench --formats int8` (the README's CI gate) printed `+0.0 [+0.0, +0.0] ~0` for
    an int8 that convert had measured at -2.0: with no fp32 row, the int8 row was its own reference. Here every
    file misses the N_WRONG mislabelled held-out images and the float Keras model of the manifest got all 40
    right: int8 alone must show -25.0 points against it, with its paired interval, in the table a user reads."""
    float_hits = np.ones(bf.N_HELDOUT, bool)
    bundle = _with_float_reference(bench_bundle, tmp_path / "b", float_hits, top1=1.0)
    res = B.bench([str(bundle)], formats="int8", threads="1", runs=5, warmup=1)
    (r,) = res["rows"]
    assert r["delta_reference"] == R.MANIFEST_FLOAT and r["delta_top1"] == pytest.approx(-25.0)
    assert r["delta_ci"][1] < 0 and r["delta_distinguishable"] is True
    table = R.format_table(res)
    assert "-25.0 [" in table and "+0.0 [+0.0, +0.0]" not in table
    assert "points against the float Keras model (convert's per-image results, in the manifest)" in table


def test_a_manifest_without_per_image_float_results_gives_the_point_drop_and_says_why(bench_bundle, tmp_path):
    """A bundle converted before per-image float hits were stored: Δ is the manifest's float top-1 on the same
    images (point value, no interval), and the table says how to get the interval."""
    bundle = _with_float_reference(bench_bundle, tmp_path / "b", None, top1=0.8)
    res = B.bench([str(bundle)], formats="int8", threads="1", runs=5, warmup=1)
    (r,) = res["rows"]
    assert r["delta_top1"] == pytest.approx(-5.0) and r["delta_ci"] is None
    table = R.format_table(res)
    assert "-5.0" in table and "convert it again for the paired interval" in table


def test_no_float_reference_gives_no_delta_and_says_what_to_add(bench_bundle, tmp_path):
    """With --data the manifest's float results are for other images: int8 alone gets no Δ (not +0.0 against
    itself), and the line under the table says to add fp32."""
    x, y, _ = bf.heldout_split()
    data = bf.write_class_folders(tmp_path / "photos", x, y)
    res = B.bench([str(bench_bundle)], formats="int8", threads="1", runs=5, warmup=1, data=str(data))
    (r,) = res["rows"]
    assert r["top1"] is not None and r.get("delta_top1") is None
    assert "no float reference for these images" in R.format_table(res) and "add fp32 to --formats" in \
        R.format_table(res)


def test_environment_recorded(bench_result):
    env = bench_result["environment"]
    for key in ("board", "cpu", "cores", "machine", "governor", "os", "kernel", "python", "runtimes", "time",
                "memory_mb", "warnings"):
        assert key in env
    assert env["runtimes"]["ai_edge_litert"] and env["runtimes"]["onnxruntime"]
    assert env["cores"] >= 1 and env["python"].count(".") == 2
    assert bench_result["stem"] == environment_stem(env, [1, 2])
    assert bench_result["settings"]["threads"] == [1, 2] and bench_result["settings"]["runs"] == RUNS


def _fake_root(tmp: Path, governor: str | None, board: str | None = "Raspberry Pi 4 Model B Rev 1.4") -> Path:
    if board:
        (tmp / "proc/device-tree").mkdir(parents=True)
        (tmp / "proc/device-tree/model").write_bytes(board.encode() + b"\x00")
    (tmp / "proc").mkdir(parents=True, exist_ok=True)
    (tmp / "proc/cpuinfo").write_text("processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\n"
                                      "CPU part\t: 0xd08\n\nHardware\t: BCM2835\nModel\t: " + (board or "") + "\n")
    for i in range(4):
        d = tmp / f"sys/devices/system/cpu/cpu{i}/cpufreq"
        d.mkdir(parents=True)
        if governor:
            (d / "scaling_governor").write_text(governor + "\n")
            (d / "scaling_max_freq").write_text("1800000\n")
    (tmp / "etc").mkdir()
    (tmp / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    return tmp


def test_board_governor_warning_and_file_naming(tmp_path, bench_bundle):
    env = read_environment(_fake_root(tmp_path / "ondemand", "ondemand"))
    assert env["board"] == "Raspberry Pi 4 Model B Rev 1.4" and env["cpu"] == "BCM2835"
    assert env["governor"] == "ondemand" and len(env["governors"]) == 4
    assert env["frequency_mhz"]["max"] == 1800.0
    assert env["warnings"] and "not 'performance'" in env["warnings"][0] and "scaling_governor" in env["warnings"][0]
    stem = environment_stem(env, [1, 2, 4])
    assert stem.startswith("raspberry-pi-4-model-b-rev-1-4_") and stem.endswith("_t1-2-4")
    assert f"_litert-{env['runtimes']['ai_edge_litert']}_" in stem

    perf = read_environment(_fake_root(tmp_path / "perf", "performance"))
    assert perf["governor"] == "performance" and governor_warning(perf) is None and perf["warnings"] == []
    mixed = {"governors": {"cpu0": "performance", "cpu1": "powersave"}}
    assert "powersave" in governor_warning(mixed)
    # no cpufreq (a VM or container): nothing to warn about; no device tree: the CPU names the file
    vm = read_environment(_fake_root(tmp_path / "vm", None, board=None))
    assert vm["board"] is None and vm["governor"] is None and governor_warning(vm) is None
    assert environment_stem({"cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz", "machine": "x86_64",
                             "runtimes": {"onnxruntime": "1.20"}}, [4]) == "intel-xeon_x86-64_ort-1.20_t4"

    # the warning reaches the result and the table
    res = B.bench([str(bench_bundle)], formats="int8", threads="1", runs=5, warmup=0, isolate=False,
                  env_root=str(tmp_path / "ondemand"))
    assert res["warnings"] == env["warnings"]
    table = R.format_table(res)
    assert "Raspberry Pi 4 Model B" in table and "warning: CPU governor is ondemand" in table


def test_throttling_during_the_run_is_recorded_and_warned(tmp_path, monkeypatch, bench_bundle):
    from tests.bench.test_bench_throttled import fake_vcgencmd

    # the Pi's firmware answers 0x0 before the run and 0x50005 (under-voltage, throttled) after it
    fake_vcgencmd(monkeypatch, tmp_path / "bin", "0x0", "0x50005")
    res = B.bench([str(bench_bundle)], formats="int8", threads="1", runs=5, warmup=0, isolate=False,
                  env_root=str(_fake_root(tmp_path / "perf", "performance")))
    t = res["environment"]["throttled"]
    assert (t["before"]["value"], t["after"]["value"]) == ("0x0", "0x50005")
    assert len(res["warnings"]) == 1 and "under-voltage, throttled during the run" in res["warnings"][0]
    assert "warning: the board was under-voltage, throttled during the run" in R.format_table(res)
    assert json.loads(json.dumps(res))["environment"]["throttled"] == t  # into the result JSON as it is

    fake_vcgencmd(monkeypatch, tmp_path / "bin2", "0x50000")  # throttled earlier since boot, not during this run
    res = B.bench([str(bench_bundle)], formats="int8", threads="1", runs=5, warmup=0, isolate=False,
                  env_root=str(tmp_path / "perf"))
    assert res["environment"]["throttled"]["after"]["since_boot"] == ["under-voltage", "throttled"]
    assert res["warnings"] == []


# ---------------------------------------------------------------------------------------- statuses
def test_corrupt_file_is_load_failed_and_others_still_run(tmp_path, bench_bundle):
    bundle = _copy_bundle(bench_bundle, tmp_path / "bundle")
    f = bundle / "model_int8.tflite"
    data = bytearray(f.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64  # same size, wrong bytes
    f.write_bytes(bytes(data))
    # a bare file that claims to be TFLite but is garbage: the runtime itself must refuse it
    garbage = tmp_path / "garbage_fp32.tflite"
    garbage.write_bytes(b"\x1c\x00\x00\x00TFL3" + os.urandom(3000))
    res = B.bench([str(bundle), str(garbage)], formats="fp32,int8", threads="1,2", runs=5, warmup=1)
    by = {(Path(r["target"]).name, r["name"], r["threads"]): r for r in res["rows"]}
    assert by[("bundle", "fp32", 1)]["status"] == "ok" and by[("bundle", "fp32", 2)]["status"] == "ok"
    for t in (1, 2):
        r = by[("bundle", "int8", t)]
        assert r["status"] == "load failed" and "checksum" in r["error"] and r["latency_ms"] is None
        g = by[("garbage_fp32.tflite", "garbage_fp32", t)]
        assert g["status"] == "load failed" and g["error"]
    table = R.format_table(res)
    assert "int8: load failed:" in table and "Model" in table.splitlines()[1]


def test_validation_failed_and_manifest_statuses(tmp_path, bench_bundle):
    bundle = _copy_bundle(bench_bundle, tmp_path / "bundle")

    def edit(m):
        for e in m["models"]:
            if e["name"] == "fp32":
                e["metrics"]["top1"] = 0.99  # convert "measured" far better than this runtime gives
        m["models"].append({"name": "fp16", "path": None, "format": "tflite", "precision": "fp16",
                            "status": "export failed", "error": "converter crashed"})

    _edit_manifest(bundle, edit)
    res = B.bench([str(bundle)], formats="all", threads="1,2", runs=5, warmup=0)
    by = {(r["name"], r["threads"]): r for r in res["rows"]}
    assert {n for n, _ in by} == {"fp32", "fp16", "int8", "onnx"}
    for t in (1, 2):
        assert by[("fp32", t)]["status"] == "validation failed" and "convert time" in by[("fp32", t)]["error"]
        assert by[("fp32", t)]["latency_ms"]["n"] == 5  # still timed
        assert by[("fp16", t)]["status"] == "export failed" and by[("fp16", t)]["error"] == "converter crashed"
        assert by[("int8", t)]["status"] == "ok" and by[("onnx", t)]["status"] == "ok"

    # a bundle whose manifest disagrees with its files' input size: loads, but fails validation
    _edit_manifest(bundle, lambda m: m["input"].update(height=24, width=24))
    res = B.bench([str(bundle)], formats="int8,edgetpu", threads="1", runs=3, warmup=0)
    by = {r["name"]: r for r in res["rows"]}
    assert by["int8"]["status"] == "validation failed" and "takes 32x32" in by["int8"]["error"]
    assert by["edgetpu"]["status"] == "load failed" and "has no 'edgetpu' model" in by["edgetpu"]["error"]


def test_worker_crash_becomes_the_rows_error(bench_bundle):
    job = {"target": str(bench_bundle), "name": "int8", "format": "tflite", "precision": "int8", "threads": 1,
           "file": str(bench_bundle / "model_int8.tflite"), "bytes": 1, "runs": 3, "warmup": 0,
           "images": str(bench_bundle / "no-such-images.npy"), "labels": None}
    row = worker.run_isolated(job, lambda ev: None)
    assert row["status"] == "validation failed"  # it loaded, then the process died
    assert "crashed (exit code 1) while running" in row["error"] and "no-such-images" in row["error"]


# ------------------------------------------------------------------------------------ files and CLI
def test_cli_writes_json_csv_png_named_after_the_environment(tmp_path, bench_bundle, capsys):
    from edgelite.cli import main

    out = tmp_path / "results"
    rc = main(["bench", str(bench_bundle), "--formats", "fp32,int8", "--threads", "1", "--runs", "10",
               "--warmup", "2", "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Format" in text and "p50 (ms)" in text and "FPS" in text and "wrote" in text
    stem = environment_stem(read_environment(), [1])
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{stem}{s}" for s in (".json", ".csv", ".png"))

    res = _result(out / f"{stem}.json")
    assert res["schema"] == R.SCHEMA and res["stem"] == stem
    for key in ("created", "edgelite", "environment", "settings", "targets", "rows", "warnings"):
        assert key in res
    for r in res["rows"]:
        assert list(r)[: len(R.ROW_KEYS)] == list(R.ROW_KEYS)
        assert set(r["latency_ms"]) == {"n", "mean", "std", "min", "p50", "p90", "p99", "max"}

    with open(out / f"{stem}.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == R.CSV_COLUMNS and len(table) == 2
    assert [row["name"] for row in table] == ["fp32", "int8"]
    assert float(table[1]["p50"]) == pytest.approx(res["rows"][1]["latency_ms"]["p50"])
    assert float(table[0]["top1"]) == pytest.approx(bf.ACCURACY)

    img = cv2.imread(str(out / f"{stem}.png"))
    assert img is not None and img.shape[0] >= 400 and img.shape[1] >= 1200
    assert (img < 128).mean() > 0.01  # text, axes and markers, not a blank page

    # --json - : the JSON alone on stdout, for `--host` and for pipes
    rc = main(["bench", str(bench_bundle / "model_int8.tflite"), "--threads", "1", "--runs", "3", "--warmup", "0",
               "--json", "-", "--no-isolate"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0]["name"] == "model_int8" and data["rows"][0]["status"] == "ok"
    assert data["rows"][0]["top1"] is None and data["targets"][0]["data"]["source"] == "random"


def test_a_second_bench_into_the_same_out_keeps_the_first_result(tmp_path, bench_bundle, capsys):
    """Issue 25, item 2: `bench --out DIR` silently replaced the earlier result of the same machine. Without
    --overwrite the second run writes <env>-2.* and says so; with it, the file is replaced."""
    from edgelite.cli import main

    out = tmp_path / "results"
    argv = ["bench", str(bench_bundle), "--formats", "int8", "--threads", "1", "--runs", "3", "--warmup", "0",
            "--out", str(out), "--no-progress", "--no-isolate"]
    stem = environment_stem(read_environment(), [1])
    assert main(argv) == 0
    first = (out / f"{stem}.json").read_bytes()
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"kept the earlier {out / stem}.json" in err and f"writing {stem}-2.* (--overwrite replaces it)" in err
    assert (out / f"{stem}.json").read_bytes() == first and (out / f"{stem}-2.json").is_file()
    assert main([*argv, "--overwrite"]) == 0
    assert (out / f"{stem}.json").read_bytes() != first and not (out / f"{stem}-3.json").exists()


def test_cli_user_errors_are_one_line(tmp_path, capsys, bench_bundle):
    from edgelite.cli import main

    assert main(["bench", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", str(bench_bundle), "--formats", "int4"]) == 2
    assert "unknown format" in capsys.readouterr().err
    assert main(["bench", str(bench_bundle), "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads" in err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip archive")
    obj = tmp_path / "obj.npz"
    np.savez(obj, images=np.array([object()], dtype=object), labels=np.zeros(1))
    for f in (bad, obj):
        assert main(["bench", str(bench_bundle), "--data", str(f), "--runs", "2", "--warmup", "0"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a readable .npz" in err, err


def test_model_format_from_any_case_of_suffix():
    from edgelite.device.runtime import model_format

    assert model_format("M.ONNX") == "onnx" and model_format("m_int8_edgetpu.TFLite") == "edgetpu"
    assert model_format("m.tflite") == "tflite" and model_format("m.pb") is None


def test_data_folder_and_bare_model_accuracy(tmp_path, bench_bundle):
    x, y, _ = bf.heldout_split()
    folder = bf.write_class_folders(tmp_path / "photos", x, y)  # 2x upscaled PNGs: resized back on the way in
    model = bench_bundle / "model_fp32.tflite"  # labels.txt beside it gives the class order
    res = B.bench([str(bench_bundle), str(model)], formats="int8", threads="1", runs=3, warmup=0, data=str(folder))
    rows = {Path(r["target"]).name: r for r in res["rows"]}
    assert rows["bundle"]["top1"] == pytest.approx(bf.ACCURACY) and rows["bundle"]["images"] == bf.N_HELDOUT
    assert rows["model_fp32.tflite"]["top1"] == pytest.approx(bf.ACCURACY)
    assert res["targets"][0]["data"]["source"] == str(folder) and res["warnings"] == []
    # a corrupt photo is skipped and named (as `edgelite train` does), not a crash
    cls = sorted(d for d in folder.iterdir() if d.is_dir())[0]
    (cls / "zz_truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    res = B.bench([str(bench_bundle)], formats="int8", threads="1", runs=3, warmup=0, data=str(folder), isolate=False)
    assert res["rows"][0]["images"] == bf.N_HELDOUT and res["rows"][0]["top1"] == pytest.approx(bf.ACCURACY)
    assert f"1 unreadable skipped: {cls.name}/zz_truncated.png" in res["targets"][0]["data"]["source"]
    assert any("zz_truncated.png" in w for w in res["warnings"]) and "zz_truncated.png" in R.format_table(res)
    npz = tmp_path / "val.npz"
    np.savez(npz, images=x[:12], labels=y[:12])
    res = B.bench([str(bench_bundle)], formats="fp32", threads="1", runs=3, warmup=0, data=str(npz), isolate=False)
    assert res["rows"][0]["images"] == 12
    expected = np.mean(np.argmax(x[:12].reshape(12, -1, 3).mean(1), 1) == y[:12])  # dominant channel
    assert res["rows"][0]["top1"] == pytest.approx(expected, abs=1e-6)


def test_pipeline_stages(tmp_path, bench_bundle):
    x, _, _ = bf.heldout_split()
    video = bf.write_video(tmp_path / "clip.avi", x[:10])  # shorter than the run: the source loops
    res = B.bench([str(bench_bundle)], formats="int8,onnx", threads="1", runs=25, warmup=2, pipeline=str(video))
    for r in res["rows"]:
        p = r["pipeline"]
        assert p["frames"] == 25 and p["source"] == str(video)
        assert set(p["stages"]) == {"capture", "preprocess", "inference", "postprocess", "total"}
        for s in p["stages"].values():
            assert s["n"] == 25 and 0 <= s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
        assert p["stages"]["total"]["mean"] >= p["stages"]["inference"]["mean"]
        assert p["fps"] == pytest.approx(1000 / p["stages"]["total"]["mean"], rel=1e-2)
    table = R.format_table(res)
    assert "pipeline on" in table and "inference p50" in table
    cols = R.csv_columns(res)
    assert "pipeline_total_p90" in cols and "pipeline_capture_p50" in cols
    assert next(csv.DictReader(io.StringIO(R.to_csv(res))))["pipeline_inference_p50"]
    from edgelite.bench.plot import plot_result

    png = plot_result(res, tmp_path / "pipe.png")
    assert cv2.imread(str(png)).shape[0] > 600  # the stage panel adds a row of plots

    with pytest.raises(BenchUsageError, match="--pipeline"):
        B.bench([str(bench_bundle)], pipeline=str(tmp_path / "missing.avi"))


def test_progress_bar_renders():
    buf = io.StringIO()
    bar = B.Progress(100, enabled=True, stream=buf)
    bar.update(50, "int8 t2", force=True)
    bar.close()
    out = buf.getvalue()
    assert "50%" in out and "100%" in out and "int8 t2" in out and out.endswith("\n")
    quiet = io.StringIO()
    B.Progress(10, enabled=False, stream=quiet).update(5, force=True)
    assert quiet.getvalue() == ""


# ------------------------------------------------------------------------------------------ --host
def test_remote_command_construction():
    from edgelite.bench.remote import plan_paths
    from edgelite.remote.errors import RemoteError
    from edgelite.remote.ssh import Remote, parse_target, rq

    def argv(host: str, options: list[str], command: str) -> list[str]:
        with Remote(parse_target(host), ssh_options=options) as r:
            return r.ssh_argv(command)

    # the same ssh as edgelite deploy: keys only, one host-key policy, the user's -o before the other defaults
    cmd = argv("pi@pi4", ["Port=2222"], "true")
    assert cmd[:5] == ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"]
    assert cmd.index("Port=2222") < cmd.index("ConnectTimeout=20") and cmd[-2:] == ["pi@pi4", "true"]
    # written as for make deploy DEVICE=...: the port goes to ssh -p
    assert argv("pi@pi4:2222", [], "true")[-4:] == ["-p", "2222", "pi@pi4", "true"]
    assert argv("ssh://pi@[::1]:2200", [], "x")[-4:-1] == ["-p", "2200", "pi@::1"]
    for bad in ("-oProxyCommand=evil", "pi@host:99999", "pi@[::1"):
        with pytest.raises(RemoteError, match="--host") as e:
            parse_target(bad)
        assert e.value.exit_code == 2
    # one quoting of device paths: `~/` stays expandable (by the device's shell), the rest is quoted
    assert rq("~/edgelite/bundle") == "~/edgelite/bundle"
    assert rq("/srv/my bundle") == "'/srv/my bundle'"
    targets, data, pipe, uploads = plan_paths(["device:~/edgelite/bundle"], None, "0")
    assert targets == ["~/edgelite/bundle"] and pipe == "0" and uploads == []
    with pytest.raises(BenchUsageError, match="device:"):
        plan_paths(["/no/such/bundle"], None, None)
    with pytest.raises(BenchUsageError, match="/srv/el/current"):  # device:deployed names the --dir it looked in
        plan_paths(["device:deployed"], None, None, None, "/srv/el")
    # no shell on the device: paths go to the agent as they are (it expands `~/`), uploads by work-folder name
    targets, data, pipe, uploads = plan_paths([str(Path(__file__).parent), "device:/srv/my bundle"], None, None)
    assert targets == ["t0/bench", "/srv/my bundle"] and uploads == [(Path(__file__).parent, "t0/bench")]


def _ssh_args(opts: list[str]) -> list[str]:
    return [a for o in opts for a in ("--ssh-option", o)]


def test_host_runs_on_the_device_with_the_deployed_install(tmp_path, root_sshd, bench_bundle, capsys):
    """A real sshd; the 'device' has a release laid out as `edgelite deploy` does: ~/edgelite/current ->
    releases/<rid> whose release.json names the venv (venvs/<env>/bin/edgelite) and the bundle."""
    import edgelite
    from edgelite.cli import main

    home = tmp_path / "home"
    root = home / "edgelite"
    venv_bin = root / "venvs/env1/bin"
    venv_bin.mkdir(parents=True)
    (root / "releases/r1").mkdir(parents=True)
    (root / "releases/r1/release.json").write_text(json.dumps({"id": "r1", "bundle": "b0", "venv": "env1"}, indent=2))
    (root / "current").symlink_to("releases/r1")
    shutil.copytree(bench_bundle, root / "bundles/b0")
    repo = Path(edgelite.__file__).resolve().parent.parent
    (venv_bin / "edgelite").write_text(
        f'#!/bin/sh\necho "$PWD $*" >> "$HOME/calls.log"\nPYTHONPATH={repo} exec {sys.executable} -m edgelite "$@"\n')
    (venv_bin / "edgelite").chmod(0o755)
    opts = root_sshd(home, "/usr/bin:/bin").options
    x, _, _ = bf.heldout_split()
    video = bf.write_video(tmp_path / "clip.avi", x[:8])
    out = tmp_path / "fetched"
    rc = main(["bench", str(bench_bundle), "device:deployed", "--host", "root@127.0.0.1", *_ssh_args(opts),
               "--formats", "fp32,int8",
               "--threads", "1,2", "--runs", "8", "--warmup", "1", "--pipeline", str(video), "--out", str(out),
               "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "via ssh root@127.0.0.1" in captured.out and "pipeline on" in captured.out
    assert "with the deployed install" in captured.err
    calls = (home / "calls.log").read_text()
    assert f"bench t0/bundle {root}/bundles/b0 --formats fp32,int8 --threads 1,2 --runs 8" in calls
    assert "--json -" in calls
    res = _result(next(out.glob("*.json")))
    assert res["remote"]["host"] == "root@127.0.0.1" and res["remote"]["install"] == "deployed"
    assert res["remote"]["edgelite"] == str(venv_bin / "edgelite")
    assert [(Path(r["target"]).name, r["name"], r["threads"], r["status"]) for r in res["rows"]] == [
        (b, n, t, "ok") for b in ("bundle", "b0") for n in ("fp32", "int8") for t in (1, 2)]
    assert all(r["top1"] == pytest.approx(bf.ACCURACY) for r in res["rows"])
    assert all(r["pipeline"]["frames"] == 8 for r in res["rows"])
    # device-side temporary names are mapped back to what the user typed, and the temp dir is gone
    assert res["targets"][0]["path"] == str(bench_bundle) and res["rows"][0]["target"] == str(bench_bundle)
    assert res["targets"][1]["path"] == f"{root}/bundles/b0"  # already on the device: its own path
    assert res["settings"]["pipeline"] == str(video)
    assert not Path(res["remote"]["tmp"]).exists()
    assert len(list(out.glob("*.png"))) == 1 and len(list(out.glob("*.csv"))) == 1


def test_host_with_no_install_uses_a_temporary_copy(tmp_path, root_sshd, bench_bundle):
    """No edgelite on the device: this package is copied over and run with the device's python3."""
    from edgelite.bench.remote import bench_remote

    home = tmp_path / "home"
    home.mkdir()
    bindir = tmp_path / "devbin"  # the device's python3 has numpy, OpenCV and LiteRT but no edgelite command
    bindir.mkdir()
    (bindir / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (bindir / "python3").chmod(0o755)
    opts = root_sshd(home, f"{bindir}:/usr/bin:/bin").options
    port = next(o for o in opts if o.startswith("Port=")).split("=", 1)[1]  # given as user@host:port this time
    res = bench_remote(f"root@127.0.0.1:{port}", [str(bench_bundle)], formats="int8", threads="1", runs=5, warmup=0,
                       ssh_options=[o for o in opts if not o.startswith("Port=")])
    assert res["remote"]["install"] == "temporary"
    assert res["rows"][0]["status"] == "ok" and res["rows"][0]["top1"] == pytest.approx(bf.ACCURACY)
    assert not Path(res["remote"]["tmp"]).exists()


def test_host_bench_that_fails_on_the_device_exits_8_after_its_own_messages(tmp_path, root_sshd, bench_bundle, capfd):
    """The device's `edgelite bench` (here one on its PATH) fails: its messages reach this terminal as they come,
    then one line says so (exit 8, a step on the device failed); the work folder is removed all the same."""
    from edgelite.cli import main

    home, bindir = tmp_path / "home", tmp_path / "devbin"
    home.mkdir()
    bindir.mkdir()
    (bindir / "edgelite").write_text('#!/bin/sh\necho "$PWD" > "$HOME/work"\n'
                                     'echo "edgelite bench: error: no format int4 here" >&2\nexit 2\n')
    (bindir / "edgelite").chmod(0o755)
    opts = root_sshd(home, f"{bindir}:/usr/bin:/bin").options
    rc = main(["bench", str(bench_bundle), "--host", "root@127.0.0.1", *_ssh_args(opts), "--formats", "int8"])
    err = capfd.readouterr().err
    assert rc == EXIT_REMOTE, err
    assert "with the path install" in err and "no format int4 here" in err
    assert err.strip().splitlines()[-1] == ("edgelite bench: error: on root@127.0.0.1: edgelite bench failed (exit code "
                                            "2); its messages are above")
    work = Path((home / "work").read_text().strip())
    assert work.name.startswith("edgelite-bench.") and not work.exists()


def test_host_unreachable_is_a_user_error(capsys, bench_bundle):
    from edgelite.cli import main

    rc = main(["bench", str(bench_bundle), "--host", "root@127.0.0.1", "--ssh-option", f"Port={free_port()}",
               "--ssh-option", "ConnectTimeout=5"])
    assert rc == EXIT_CONNECT  # the one exit-code table: SSH could not connect (7), as for edgelite deploy
    err = capsys.readouterr().err
    assert "cannot reach root@127.0.0.1 over SSH" in err and err.count("\n") == 1


def test_benchmark_script_writes_results_named_after_the_environment(tmp_path, bench_bundle):
    """benchmarks/bench_demo.py: the standard matrix + the ratios, incl. the bare invoke() loop agreement."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_demo.py"
    spec = importlib.util.spec_from_file_location("bench_demo", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--bundle", str(bench_bundle), "--threads", "1", "--runs", "40", "--warmup", "5",
                     "--out", str(tmp_path), "--no-keras", "--rounds", "2"]) == 0
    stem = "bench_" + environment_stem(read_environment(), [1])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{stem}{s}" for s in (".csv", ".json", ".md", ".png"))
    res = _result(tmp_path / f"{stem}.json")
    ratios = {r["ratio"]: r for r in res["bench_demo"]["ratios"]}
    assert {"int8 / fp32 TFLite p50", "LiteRT fp32 / ONNX Runtime p50", "edgelite / bare invoke() p50 (fp32)",
            "edgelite / bare invoke() p50 (int8)"} <= set(ratios)
    assert ratios["int8 / fp32 TFLite p50"]["value"] > 0
    bare = res["bench_demo"]["bare_invoke_p50_ms"]["int8"]["1"]
    rounds = res["bench_demo"]["harness_rounds"]["int8"]["1"]
    # the harness check compares medians over alternating rounds; round 1 is the main table's row
    assert len(rounds["rounds"]["edgelite"]) == len(rounds["rounds"]["bare"]) == 2
    assert rounds["rounds"]["edgelite"][0] == next(r for r in res["rows"] if r["name"] == "int8")["latency_ms"]["p50"]
    assert bare == pytest.approx(float(np.median(rounds["rounds"]["bare"])))
    assert bare > 0 and ratios["edgelite / bare invoke() p50 (int8)"]["value"] == pytest.approx(
        float(np.median(rounds["rounds"]["edgelite"])) / bare)
    md = (tmp_path / f"{stem}.md").read_text()
    assert "## Ratios (all measured in this run)" in md and "Published figures from other hardware" in md
    assert "25.6 ms" in md and "4.55 ms" in md and f"({stem}.png)" in md


def test_min_seconds_keeps_timing_past_runs(bench_bundle):
    t = time.perf_counter()
    res = B.bench([str(bench_bundle)], formats="int8", threads="1", runs=3, warmup=0, min_seconds=0.3, isolate=False)
    r = res["rows"][0]
    assert time.perf_counter() - t >= 0.3
    assert r["latency_ms"]["n"] > 3 and len(r["samples_ms"]) == r["latency_ms"]["n"]
    assert res["settings"]["min_seconds"] == 0.3 and r["peak_rss_mb"] is None  # in-process: no per-model memory


ALLOWED_TOP = {"numpy", "cv2", "ai_edge_litert", "tflite_runtime", "onnxruntime", "edgelite"}


def test_bench_modules_import_only_the_device_runtime():
    """edgelite/bench/*.py run on a Pi with the core install: stdlib, numpy, cv2, the runtimes, edgelite."""
    import ast

    import edgelite.bench

    stdlib = set(sys.stdlib_module_names)
    files = sorted(Path(edgelite.bench.__file__).parent.glob("*.py"))
    assert {"run.py", "worker.py", "stats.py", "data.py", "report.py", "targets.py", "pipeline.py"} <= {f.name for f in files}
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top in ALLOWED_TOP, f"{f.name} imports {name}"
                if top == "edgelite":
                    assert name in ("edgelite", "edgelite.bundle", "edgelite.errors", "edgelite.cli", "edgelite.images",
                                    "edgelite.formats", "edgelite.options", "edgelite.stats", "edgelite.suggest") or name.startswith(("edgelite.device", "edgelite.bench", "edgelite.remote")), \
                        f"{f.name} imports {name}"
    modules = ", ".join(f"edgelite.bench.{f.stem}" for f in files if f.stem != "__init__")
    code = (f"import sys, {modules}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _edgelite_imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The edgelite modules `module` imports, at module level or inside a function."""
    import ast

    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def test_bench_and_device_have_no_import_cycle():
    """The shared pieces (stats, data, errors, frames) import nothing that imports them back, so bench's
    runner, worker and pipeline timer, and device's sources (and the picamera source) form no cycle."""
    import edgelite

    root = Path(edgelite.__file__).parent
    files = {".".join(("edgelite", *f.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): f
             for pkg in ("bench", "device") for f in (root / pkg).rglob("*.py")}
    graph = {m: _edgelite_imports(f, m, set(files)) & set(files) for m, f in files.items()}

    def reachable(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return seen

    cycles = sorted(m for m in graph if m in reachable(m))
    assert not cycles, f"modules on an import cycle: {cycles}"
    assert "edgelite.device.sources.base" in graph["edgelite.device.sources.picamera"]
    assert "edgelite.device.sources" not in reachable("edgelite.device.sources.picamera")
    for shared in ("stats", "data", "errors"):
        from_bench = {m for m in reachable(f"edgelite.bench.{shared}") if m.startswith("edgelite.bench.")}
        assert from_bench <= {"edgelite.bench.errors"}, f"bench.{shared} imports {from_bench}"


def test_bench_errors_are_usage_errors_of_the_one_error_tree():
    from edgelite.errors import EXIT_USAGE, EdgeliteError, UsageError

    assert issubclass(BenchUsageError, UsageError) and issubclass(BenchUsageError, EdgeliteError)
    with pytest.raises(UsageError) as e:
        B.parse_threads("0")
    assert e.value.exit_code == EXIT_USAGE == 2 and "--threads" in str(e.value)


def test_top1_below_the_manifest_fails_validation_once_per_format():
    """The worker and the runner (a row whose top-1 is reused from another thread count) give one verdict."""
    assert stats.top1_shortfall(0.90, 0.93) is None  # within the tolerance
    assert stats.top1_shortfall(None, 0.9) is None and stats.top1_shortfall(0.1, None) is None
    why = stats.top1_shortfall(0.80, 0.90)
    assert why and "0.800" in why and "0.900" in why and f"tolerance {stats.TOP1_TOLERANCE}" in why
    row = {"status": stats.OK, "top1": 0.80, "top1_manifest": 0.90, "error": None}
    B._check_top1(row)
    assert row["status"] == stats.VALIDATION_FAILED and row["error"] == why


def test_min_top1_and_max_p50_gate_the_exit_code_for_ci(bench_bundle, capsys):
    """A row below --min-top1 or above --max-p50 exits 3 (EXIT_REFUSED) after the table, naming the rows."""
    from edgelite.cli import main
    from edgelite.errors import EXIT_REFUSED

    common = [str(bench_bundle), "--formats", "fp32,int8", "--threads", "1", "--runs", "5", "--warmup", "1",
              "--no-isolate", "--no-progress"]
    assert main(["bench", *common, "--min-top1", str(bf.ACCURACY - 0.05), "--max-p50", "10000"]) == 0
    capsys.readouterr()
    assert main(["bench", *common, "--min-top1", str(bf.ACCURACY + 0.05)]) == EXIT_REFUSED
    out, err = capsys.readouterr()
    assert "p50 (ms)" in out  # the table is still printed
    assert err.count("\n") == 1 and "2 of 2 rows miss the gate" in err and "fp32 x1: top-1 0.750 < 0.8" in err
    assert main(["bench", *common, "--max-p50", "0.000001"]) == EXIT_REFUSED
    assert "p50" in capsys.readouterr().err
    assert main(["bench", *common, "--min-top1", "85"]) == 2
    assert "--min-top1 85 is not a fraction" in capsys.readouterr().err


def test_cpu_vector_extensions_are_recorded(tmp_path, bench_result):
    """VNNI / AMX (x86) and dot product / i8mm (ARM) decide how fast int8 can be: the result says which."""
    from edgelite.bench.env import cpu_vector_extensions

    (tmp_path / "x86/proc").mkdir(parents=True)
    (tmp_path / "x86/proc/cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw "
                                               "avx512_vnni amx_bf16 amx_tile amx_int8\n")
    assert cpu_vector_extensions(tmp_path / "x86") == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw",
                                                       "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"]
    pi = _fake_root(tmp_path / "pi", "performance")
    (pi / "proc/cpuinfo").write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n")
    assert cpu_vector_extensions(pi) == ["asimd"]
    assert cpu_vector_extensions(tmp_path / "nothing") == []
    assert isinstance(bench_result["environment"]["cpu_vector_extensions"], list)


def test_the_plot_labels_do_not_overlap_and_the_size_legend_shows_real_sizes():
    """Issue 25 (smaller): the accuracy-vs-latency panel's "t1"/"t2" labels overlapped each other and other
    markers, and its size legend showed 13.5/4 = 3.37 MB, a size no file had (int8 is 3.97)."""
    from edgelite.bench import plot as P

    assert P.legend_sizes([13.49, 6.79, 3.97, 3.98, 13.5]) == [3.97, 13.5]
    img = np.full((400, 600, 3), 255, np.uint8)
    # the demo's crowd: two big markers almost on top of each other, small ones beside them
    marks = [(300, 200, 24), (312, 200, 24), (350, 200, 14), (160, 180, 10), (190, 180, 10), (300, 260, 10)]
    boxes: list[tuple[int, int, int, int]] = []
    for i, m in enumerate(marks):
        P._label_clear_of(img, f"qat_int8 t{i}", m, marks, boxes, (0, 0, 600, 400))
    assert len(boxes) == len(marks)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        for b0, c0, b1, c1 in boxes[i + 1:]:
            assert not (x0 < b1 and b0 < x1 and y0 < c1 and c0 < y1), "two labels overlap"
        for mx, my, mr in marks:
            assert (max(x0, min(mx, x1)) - mx) ** 2 + (max(y0, min(my, y1)) - my) ** 2 > mr ** 2, "label on a marker"
