"""`edgelite run BUNDLE --source imx500`: the AI Camera's sensor runs the network; its scores reach the same
results, JSON lines, preview and /metrics as every other runtime.

No AI Camera here: picamera2 is the stand-in in tests/device/standin (picamera2's interface: `Picamera2`,
`picamera2.devices.IMX500` with `get_outputs` / `get_kpi_info` on each frame's metadata). The stand-in's
"network" scores frame i as colour i of red, green, blue, yellow; the real sensor's numbers, the ISP's crop
and libcamera itself only the camera shows (README, "Raspberry Pi AI Camera").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgelite.bundle import Bundle, ModelEntry
from tests.device import devicekit
from tests.device.test_run_preview import get, running_loop

STANDIN = Path(__file__).parent / "standin"


@pytest.fixture(scope="module")
def imx500_bundle(tiny, tmp_path_factory) -> Path:
    """The tiny bundle plus an imx500 entry (packerOut.zip, sha256 in the manifest) and the network.rpk that
    `imx500-package` makes from it on the Pi."""
    root = tmp_path_factory.mktemp("imx500") / "bundle"
    shutil.copytree(tiny["bundle"], root)
    with zipfile.ZipFile(root / "packerOut.zip", "w") as z:
        z.writestr("packerOut/network.fpk", b"\0" * 64)
    b = Bundle.load(root)
    b.add_file(ModelEntry(name="imx500", path="packerOut.zip", format="imx500", precision="int8",
                          metrics={"top1": 0.9}))
    b.save()
    (root / "imx500").mkdir()
    (root / "imx500" / "network.rpk").write_bytes(b"rpk\0" * 16)
    return root


def standin_env(**extra) -> dict:
    env = devicekit.cli_env(**extra)
    env["PYTHONPATH"] = f"{STANDIN}:{env['PYTHONPATH']}"
    return env


def test_run_source_imx500_reports_the_sensors_labels_and_time(imx500_bundle):
    """JSON lines: the sensor's top-1 for each frame (red, green, blue, yellow in turn) and its inference time."""
    p = devicekit.run_cmd(imx500_bundle, "--source", "imx500", "--max-frames", "8", "--json", "-",
                          "--print-every", "0", env=standin_env())
    assert p.returncode == 0, p.stderr
    lines = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 8
    # the stand-in sensor starts scoring at its third frame (index 2: blue)
    colours = ["red", "green", "blue", "yellow"]
    assert [r["label"] for r in lines] == [colours[(i + 2) % 4] for i in range(8)]
    assert all(r["score"] == pytest.approx(0.9961) for r in lines)
    # the inference time is the sensor's (CnnKpiInfo, 2.5 ms + i us), not a CPU invoke
    assert all(2.5 <= r["timings_ms"]["inference"] < 2.6 for r in lines)
    assert all(r["timings_ms"]["preprocess"] == 0.0 for r in lines)


def test_preview_and_metrics_show_the_sensor_runtime(imx500_bundle, monkeypatch):
    monkeypatch.syspath_prepend(str(STANDIN))
    for name in [m for m in sys.modules if m.startswith("picamera2")]:
        monkeypatch.delitem(sys.modules, name)
    try:
        with running_loop({"bundle": imx500_bundle}, "imx500") as (base, _):
            code, _, body = get(base + "/healthz")
            h = json.loads(body)
            assert code == 200 and h["model"] == "imx500" and h["frames"] > 0
            code, _, body = get(base + "/metrics")
            text = body.decode()
            assert code == 200 and 'runtime="imx500 (on the sensor)"' in text
    finally:
        for name in [m for m in sys.modules if m.startswith("picamera2")]:
            del sys.modules[name]


def test_missing_network_rpk_says_how_to_make_it(imx500_bundle, tmp_path):
    """A bundle copied without the packaging step: one line naming imx500-package."""
    root = tmp_path / "b"
    shutil.copytree(imx500_bundle, root)
    shutil.rmtree(root / "imx500")
    p = devicekit.run_cmd(root, "--source", "imx500", "--max-frames", "1", env=standin_env())
    assert p.returncode == 2 and "imx500-package -i" in p.stderr and "network.rpk" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_a_bundle_without_imx500_says_convert_with_formats_imx500(tiny):
    p = devicekit.run_cmd(tiny["bundle"], "--source", "imx500", "--max-frames", "1", env=standin_env())
    assert p.returncode == 2 and "--formats imx500" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_without_picamera2_the_error_says_install_it(imx500_bundle):
    try:
        import picamera2  # noqa: F401
        pytest.skip("picamera2 is installed here")
    except ImportError:
        pass
    p = devicekit.run_cmd(imx500_bundle, "--source", "imx500", "--max-frames", "1")
    assert p.returncode == 2 and "python3-picamera2" in p.stderr, p.stderr


def test_bench_leaves_the_sensor_model_to_the_camera(imx500_bundle):
    """`edgelite bench BUNDLE` times this CPU's formats; packerOut.zip runs only on the sensor."""
    from edgelite.bench.targets import resolve_targets

    [target] = resolve_targets([str(imx500_bundle)])
    names = [m.name for m in target.models]
    assert "imx500" not in names and "int8" in names


def test_bench_pipeline_imx500_reports_the_sensors_own_time(imx500_bundle, tmp_path):
    """`edgelite bench BUNDLE --formats imx500 --pipeline imx500`: the latency is the sensor's (its metadata's
    KPI: 2.5 ms + i us in the stand-in), timed through the same camera loop as `run`."""
    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, "-m", "edgelite", "bench", str(imx500_bundle), "--formats", "imx500",
                        "--pipeline", "imx500", "--runs", "10", "--warmup", "2", "--json", str(out)],
                       capture_output=True, text=True, timeout=120, env=standin_env(), cwd=devicekit.REPO)
    assert p.returncode == 0, p.stderr
    rows = [r for r in json.loads(out.read_text())["rows"] if r["name"] == "imx500"]
    [row] = rows
    assert row["status"] == "ok" and row["runtime"] == "imx500 (on the sensor)", row.get("error")
    assert 2.5 <= row["latency_ms"]["p50"] < 2.6 and row["pipeline"]["frames"] == 10


def test_a_network_for_another_bundle_is_one_clear_error(imx500_bundle):
    """The sensor's output has 10 scores, the bundle 4 labels (an .rpk made from another bundle)."""
    p = devicekit.run_cmd(imx500_bundle, "--source", "imx500", "--max-frames", "3", "--print-every", "0",
                          env=standin_env(STANDIN_IMX500_CLASSES="10"))
    assert p.returncode != 0 and "gave 10 scores, the bundle has 4 labels" in p.stderr, p.stderr
    assert "imx500-package" in p.stderr and "Traceback" not in p.stderr
