"""`edgelite run` end to end on real files: accuracy on a video of held-out images, JSON lines, folders,
bare model files, and the errors a user can cause."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgelite.device import run
from edgelite.device.loop import RunOptions, load
from edgelite.device.runtime import load_model
from tests.device import devicekit


def direct_predictions(path, images) -> np.ndarray:
    """What the model says about each held-out image, called directly (no video, no loop)."""
    m = load_model(path)
    return np.array([int(np.argmax(m.classify(img))) for img in images])


def test_cli_video_accuracy_matches_model(tiny, heldout_video, tmp_path):
    """The headline test: labels from the loop on a video of held-out images match the model's accuracy."""
    x, y = tiny["heldout"]
    out = tmp_path / "results.jsonl"
    p = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--format", "int8", "--json", out,
                          "--print-every", "0")
    assert p.returncode == 0, p.stderr
    lines = [json.loads(s) for s in out.read_text().splitlines()]
    assert [d["source_frame"] for d in lines] == list(range(len(y))), "file sources are read in order, no drops"
    loop_ids = np.array([d["top_k"][0]["id"] for d in lines])
    direct = direct_predictions(tiny["files"]["int8"], x)
    loop_acc, model_acc = float((loop_ids == y).mean()), float((direct == y).mean())
    agreement = float((loop_ids == direct).mean())
    print(f"int8: loop accuracy {loop_acc:.3f} on the video, model accuracy {model_acc:.3f}, agreement {agreement:.3f}")
    assert model_acc >= 0.9, "the tiny model did not learn its classes; the test would be meaningless"
    assert abs(loop_acc - model_acc) <= 0.025
    assert agreement >= 0.975  # only JPEG compression separates a video frame from its image
    assert all(d["label"] == tiny_label(d) for d in lines)
    assert "end of source" in p.stderr


def tiny_label(d: dict) -> str:
    return devicekit.LABELS[d["top_k"][0]["id"]]


@pytest.mark.parametrize("fmt", ["fp32", "onnx"])
def test_api_folder_accuracy_each_format(tiny, heldout_folder, fmt):
    x, y = tiny["heldout"]
    seen: list[int] = []
    s = run(tiny["bundle"], source=str(heldout_folder), format=fmt, print_every=0, truth=list(y),
            on_result=lambda r, f: seen.append(r.top_k[0].id), handle_signals=False)
    assert s.exit_code == 0 and s.reason == "end of source"
    assert s.frames == len(y) and s.checked == len(y)
    direct = direct_predictions(tiny["files"][fmt], x)
    # PNG frames are lossless and 3x nearest-enlarged: the loop must agree with the model exactly
    assert np.array_equal(np.array(seen), direct)
    assert s.accuracy == pytest.approx(float((direct == y).mean()))
    assert s.model == fmt and s.stage_ms["inference"] > 0


def test_heldout_source_reports_accuracy(tiny):
    p = devicekit.run_cmd(tiny["bundle"], "--source", "heldout", "--print-every", "0", "--format", "int8")
    assert p.returncode == 0, p.stderr
    n = len(tiny["heldout"][1])
    line = p.stdout.strip().splitlines()[-1]
    correct = int(line.split("/")[0])
    assert f"/{n} frames classified correctly" in line and correct >= 0.9 * n
    # issue 25, item 4: the loop's figure says what it was measured on, beside convert's on the images
    from edgelite.bundle import Bundle

    top1 = Bundle.load(tiny["bundle"]).entry("int8").metrics["top1"]
    assert f"with int8 on the held-out images as JPEG video frames; on the images themselves convert measured " \
           f"{top1:.1%} (the compression costs the difference)" in line


def test_json_to_stdout_is_machine_parsable(tiny, heldout_video):
    p = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--json", "-", "--max-frames", "7",
                          "--top-k", "2")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 7
    for i, s in enumerate(lines):
        d = json.loads(s)
        assert d["frame"] == i and len(d["top_k"]) == 2
        assert set(d["timings_ms"]) == {"capture", "preprocess", "inference", "postprocess", "total"}
        assert d["top_k"][0]["score"] >= d["top_k"][1]["score"]
        assert isinstance(d["timestamp"], float) and d["fps"] >= 0
    assert "max frames" in p.stderr
    # issue 25, item 5: --json - printed a console line per frame on stderr too (--print-every defaulted to 1);
    # the JSON lines are the output, stderr keeps the messages; --print-every N still asks for them
    assert not [s for s in p.stderr.splitlines() if s.startswith("frame")], p.stderr
    p = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--json", "-", "--max-frames", "4",
                          "--print-every", "2")
    assert len(p.stdout.splitlines()) == 4 and len([s for s in p.stderr.splitlines() if s.startswith("frame")]) == 2


def test_console_lines(tiny, heldout_video):
    p = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--max-frames", "10", "--print-every", "5")
    assert p.returncode == 0, p.stderr
    lines = [s for s in p.stdout.splitlines() if s.startswith("frame")]
    assert len(lines) == 2 and "fps" in lines[0] and " inf " in lines[0]


def test_threshold_and_smoothing(tiny, heldout_folder):
    x, y = tiny["heldout"]
    results = []
    run(tiny["bundle"], source=str(heldout_folder), format="fp32", threshold=0.999999, print_every=0,
        on_result=lambda r, f: results.append(r), handle_signals=False)
    assert any(r.label is None for r in results), "a threshold near 1 must hide uncertain frames"
    assert all(p.score >= 0.999999 for r in results for p in r.top_k)

    # a folder of one repeated image per class, smoothed over 4 frames: the label changes late
    frames = np.concatenate([np.repeat(x[y == 0][:1], 6, 0), np.repeat(x[y == 2][:1], 6, 0)])
    folder = devicekit.write_folder(heldout_folder.parent / "smooth", frames)
    results = []
    run(tiny["bundle"], source=str(folder), format="fp32", smooth=4, print_every=0,
        on_result=lambda r, f: results.append(r), handle_signals=False)
    labels = [r.label for r in results]
    assert labels[:6] == ["red"] * 6 and labels[-1] == "blue"
    changes = [i for i, r in enumerate(results) if r.changed]
    assert changes[0] == 0 and len(changes) == 2 and 7 <= changes[1] <= 9  # a smoothed change, not at frame 6
    assert results[changes[1]].previous == "red"


def test_bare_model_file_with_labels(tiny, heldout_folder, tmp_path):
    model = tmp_path / "m.tflite"
    shutil.copy(tiny["files"]["int8"], model)
    p = devicekit.run_cmd(model, "--source", heldout_folder, "--max-frames", "3", "--json", "-")
    assert p.returncode == 2 and "--labels" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "names.txt").write_text("\n".join(devicekit.LABELS) + "\n")
    p = devicekit.run_cmd(model, "--labels", tmp_path / "names.txt", "--source", heldout_folder, "--max-frames", "3",
                          "--json", "-")
    assert p.returncode == 0, p.stderr
    assert [json.loads(s)["file"] for s in p.stdout.splitlines()] == ["00000.png", "00001.png", "00002.png"]


def test_auto_picks_a_validated_model_and_loop_restarts_files(tiny, heldout_video):
    from edgelite.bundle import Bundle

    s = run(tiny["bundle"], source=str(heldout_video), loop=True, max_frames=300, print_every=0, handle_signals=False)
    # no Edge TPU here: --format auto runs the fastest of the bundle's validated CPU models (measured)
    ok = {e.name for e in Bundle.load(tiny["bundle"]).models if e.status == "ok" and e.name != "edgetpu"}
    assert s.model in ok, (s.model, ok)
    assert s.frames == 300 and s.reason == "max frames"


def test_edgetpu_flag_without_the_hardware_is_a_clear_error(tiny, heldout_video):
    p = devicekit.run_cmd(tiny["files"]["int8"], "--edgetpu", "--labels", tiny["bundle"] / "labels.txt",
                          "--source", heldout_video, "--max-frames", "1")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "libedgetpu" in p.stderr and "Edge TPU" in p.stderr


def test_edgetpu_flag_with_an_onnx_file_is_a_clear_error(tiny, heldout_video):
    p = devicekit.run_cmd(tiny["files"]["onnx"], "--edgetpu", "--labels", tiny["bundle"] / "labels.txt",
                          "--source", heldout_video, "--max-frames", "1")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "an .onnx model runs on the CPU" in p.stderr and "drop --edgetpu" in p.stderr


@pytest.mark.parametrize("args, message", [
    (["--source", "/nonexistent/clip.avi"], "no such file"),
    (["--format", "fp16"], "has no 'fp16' model"),
    (["--top-k", "0"], "--top-k"),
    (["--threshold", "2"], "--threshold"),
    (["--http", "0.0.0.0:0"], "--token"),
    (["--http", "nonsense:port"], "--http"),
    (["--display"], "--display"),
    (["--source", "heldout", "--edgetpu"], "edgetpu"),
    (["--labels", "labels.txt"], "--labels is for a bare model file"),
])
def test_user_errors_are_one_line(tiny, heldout_video, args, message):
    if "--source" not in args:
        args = [*args, "--source", str(heldout_video)]
    p = devicekit.run_cmd(tiny["bundle"], *args, "--max-frames", "1")
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    err = [s for s in p.stderr.splitlines() if s.startswith("edgelite run: error:")]
    assert len(err) == 1 and message in err[0], p.stderr


def test_not_a_video_file(tiny, tmp_path):
    bad = tmp_path / "notes.avi"
    bad.write_text("not a video\n")
    p = devicekit.run_cmd(tiny["bundle"], "--source", bad)
    assert p.returncode == 2 and "cannot open" in p.stderr and "Traceback" not in p.stderr


def test_corrupt_model_in_bundle_is_refused_before_loading(tiny, tmp_path, heldout_video):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny["bundle"], bundle)
    data = bytearray((bundle / "model_int8.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "model_int8.tflite").write_bytes(bytes(data))
    p = devicekit.run_cmd(bundle, "--source", heldout_video, "--format", "int8")
    assert p.returncode == 4 and "checksum" in p.stderr and "Traceback" not in p.stderr  # EXIT_CHECKSUM
    (bundle / "model_int8.tflite").write_bytes(bytes(data[:-100]))
    p = devicekit.run_cmd(bundle, "--source", heldout_video, "--format", "int8")
    assert p.returncode == 4 and "truncated" in p.stderr


def test_load_api(tiny):
    loaded = load(tiny["bundle"], RunOptions(format="onnx", crop=0.5))
    assert loaded.name == "onnx" and loaded.format == "onnx" and loaded.spec.crop == 0.5
    assert loaded.labels == devicekit.LABELS and loaded.metrics["top1"] >= 0.9


@pytest.mark.parametrize("threads", ["1", "2"])  # 2: the model copies read the file and emit
def test_reader_closing_the_json_pipe_stops_cleanly(tiny, heldout_video, threads):
    """`edgelite run ... --json - | head -1`: exit 0 with a summary, no BrokenPipeError traceback."""
    proc = devicekit.start_cmd(tiny["bundle"], "--source", heldout_video, "--loop", "--json", "-", "--print-every", "0",
                               "--format", "int8", "--threads", threads)
    try:
        assert json.loads(proc.stdout.readline())["frame"] == 0
        proc.stdout.close()
        rc = proc.wait(timeout=30)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0 and "output closed" in err and "Traceback" not in err


def test_an_on_result_error_reaches_the_caller_of_run_and_the_outputs_are_closed(tiny, heldout_folder, tmp_path):
    """on_result runs on the reporting thread; what it raises still ends run() with that exception, after
    the results before it were written."""
    out = tmp_path / "r.jsonl"

    def boom(result, frame):
        if result.frame == 2:
            raise ValueError("my callback failed")

    with pytest.raises(ValueError, match="my callback failed"):
        run(tiny["bundle"], source=str(heldout_folder), print_every=0, json=str(out), on_result=boom,
            handle_signals=False)
    frames = [json.loads(line)["frame"] for line in out.read_text().splitlines()]
    assert frames[:3] == [0, 1, 2]


def test_more_threads_than_cores_gets_a_note(tiny, heldout_video):
    """Issue 25 (smaller): `run --threads 4` on 2 cores said nothing; the threads only share the cores."""
    p = devicekit.run_cmd(tiny["bundle"], "--source", heldout_video, "--threads", "512", "--max-frames", "2",
                          "--print-every", "0")
    assert p.returncode == 0, p.stderr
    assert "note: --threads 512 is more than the " in p.stderr and "inference is no faster" in p.stderr
