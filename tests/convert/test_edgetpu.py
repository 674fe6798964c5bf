"""Edge TPU: the static compatibility report (always) and the compiler path (when edgetpu_compiler exists).

There is no Edge TPU compiler on this machine (it is an x86-64 apt package from Coral), so the
compiler path is exercised with a stand-in executable that behaves like it on the command line
(same flags, same output files, the compiler's documented log format). A real compiler, when on
PATH, is exercised by ``test_real_compiler``.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap

import numpy as np
import pytest

from edgelite.bundle import Bundle
from edgelite.convert import convert
from edgelite.convert.edgetpu import compatibility, find_compiler, parse_compiler_output, report_markdown
from edgelite.convert.tflite import to_tflite

COMPILER_OUTPUT = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1087 ms.

Input model: model_int8.tflite
Input size: 3.79MiB
Output model: out/model_int8_edgetpu.tflite
Output size: 4.02MiB
On-chip memory used for caching model parameters: 3.42MiB
On-chip memory remaining for caching model parameters: 4.26MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 67
Operation log: out/model_int8_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 65
Number of operations that will run on CPU: 2
"""

COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198
Input: model_int8.tflite
Output: out/model_int8_edgetpu.tflite

Operator                       Count      Status

CONV_2D                        33         Mapped to Edge TPU
DEPTHWISE_CONV_2D              16         Mapped to Edge TPU
ADD                            10         Mapped to Edge TPU
MEAN                           1          Mapped to Edge TPU
QUANTIZE                       2          Operation is otherwise supported, but not mapped due to some unspecified limitation
"""


def _model_with(layer_between):
    import tf_keras as keras

    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = layer_between(x)
    x = keras.layers.Conv2D(4, 1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inp, out)


def _calibration(n=8):
    return np.random.default_rng(0).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)


def test_report_finds_the_split_at_an_unsupported_op():
    """ELU has no Edge TPU kernel (here the converter even leaves it float, behind a DEQUANTIZE)."""
    import tf_keras as keras

    data = to_tflite(_model_with(keras.layers.ELU()), "full_int8", calibration=_calibration())
    rep = compatibility(data, "int8")
    ops = [o["op"] for o in rep["ops"]]
    split = rep["split"]["index"]
    assert rep["split"]["op"] in ("DEQUANTIZE", "ELU") and split <= ops.index("ELU")
    assert ops[:split] == ["QUANTIZE", "MUL", "ADD", "CONV_2D"]  # input quantize + in-graph rescaling + conv
    assert all(o["runs_on"] == "edgetpu" for o in rep["ops"][:split])
    assert all(o["runs_on"] == "cpu" for o in rep["ops"][split:])  # everything after the split falls back
    assert rep["ops"][-2]["op"] == "SOFTMAX" and rep["ops"][-2]["reasons"] == []  # supported, still on the CPU
    assert rep["tpu_ops"] == split and rep["cpu_ops"] == len(ops) - split and not rep["compatible"]
    assert not rep["checks"]["supported_ops"]
    md = report_markdown(rep)
    assert f"**Graph split** at op {split} ({rep['split']['op']})" in md and "| ELU | 1 | CPU |" in md


def test_report_flags_float_tensors():
    import tf_keras as keras

    rep = compatibility(to_tflite(_model_with(keras.layers.ReLU()), "none"), "fp32")
    assert not rep["checks"]["int8"] and rep["tpu_ops"] == 0 and rep["split"]["index"] == 0
    assert rep["ops"][0]["op"] == "CAST"  # float exports take uint8 and cast in the graph
    assert any("not int8/uint8" in r for r in rep["ops"][1]["reasons"])


def test_report_float_io_keeps_the_body_on_the_tpu():
    import tf_keras as keras

    data = to_tflite(_model_with(keras.layers.ReLU()), "full_int8", calibration=_calibration(), io_type="float32")
    rep = compatibility(data, "int8")
    assert rep["ops"][0]["op"] == "QUANTIZE" and rep["ops"][0]["runs_on"] == "cpu"
    assert rep["ops"][1]["runs_on"] == "edgetpu"
    assert any("use --io-type uint8" in i for i in rep["issues"])


def test_parse_compiler_output():
    info = parse_compiler_output(COMPILER_OUTPUT)
    assert info["compiler_version"] == "16.0.384591198"
    assert (info["ops_total"], info["tpu_ops"], info["cpu_ops"], info["subgraphs"]) == (67, 65, 2, 1)
    table = {(o["op"], o["status"]): o["count"] for o in parse_compiler_output(COMPILER_LOG)["operators"]}
    assert table[("CONV_2D", "Mapped to Edge TPU")] == 33
    assert table[("QUANTIZE", "Operation is otherwise supported, but not mapped due to some unspecified limitation")] == 2
    full = parse_compiler_output("Edge TPU Compiler version 16.0\nTotal number of operations: 12\n")
    assert (full["tpu_ops"], full["cpu_ops"]) == (12, 0)


def _stand_in_compiler(bin_dir, *, fail: bool = False):
    """An executable with edgetpu_compiler's interface: `-s/--show_operations --out_dir DIR model.tflite`."""
    bin_dir.mkdir()
    exe = bin_dir / "edgetpu_compiler"
    exe.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import pathlib, shutil, sys
        args = sys.argv[1:]
        if {fail!r}:
            print("Edge TPU Compiler version 16.0.384591198")
            print("ERROR: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '9'", file=sys.stderr)
            sys.exit(1)
        out = pathlib.Path(args[args.index("--out_dir") + 1])
        src = pathlib.Path(args[-1])
        shutil.copyfile(src, out / (src.stem + "_edgetpu.tflite"))
        (out / (src.stem + "_edgetpu.log")).write_text({COMPILER_LOG!r})
        print({COMPILER_OUTPUT!r})
        """))
    exe.chmod(0o755)
    return exe


def test_compiler_path_with_a_stand_in_compiler(tiny, tmp_path, monkeypatch):
    _stand_in_compiler(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    assert find_compiler() == str(tmp_path / "bin" / "edgetpu_compiler")
    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="int8,edgetpu", calibration=16, verbose=False)
    e = b.entry("edgetpu")
    assert e.status == "ok" and e.path == "model_int8_edgetpu.tflite" and e.extra["source"] == "int8"
    assert e.extra["compiler"]["tpu_ops"] == 65 and e.extra["compiler"]["cpu_ops"] == 2
    assert e.extra["compiler"]["compiler_version"] == "16.0.384591198"
    assert e.metrics["validated"] is False and "Edge TPU" in e.metrics["reason"]  # no Edge TPU attached here
    Bundle.load(b.root).verified_path(Bundle.load(b.root).entry("edgetpu"))
    from edgelite.convert.metadata import read_metadata

    assert read_metadata(b.root / e.path)["labels"] == b.labels


def test_failing_compiler_keeps_the_int8_model(tiny, tmp_path, monkeypatch):
    _stand_in_compiler(tmp_path / "bin", fail=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{__import__('os').environ['PATH']}")
    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="int8,edgetpu", calibration=16, verbose=False)
    assert b.entry("int8").status == "ok"
    e = b.entry("edgetpu")
    assert e.status == "export failed" and "edgetpu_compiler failed (exit 1)" in e.error and "FULLY_CONNECTED" in e.error


def test_edgetpu_alone_adds_its_int8_source(tiny, tmp_path):
    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="edgetpu", calibration=16, verbose=False)
    assert [m.name for m in b.models] == ["int8", "edgetpu"]
    compat = json.loads((b.root / "edgetpu_compat.json").read_text())
    assert compat["int8"]["compatible"] is True


@pytest.mark.edgetpu
@pytest.mark.skipif(shutil.which("edgetpu_compiler") is None, reason="edgetpu_compiler not installed")
def test_real_compiler(tiny, tmp_path):
    b = convert(tiny["model"], tmp_path / "b", data=tiny["data"], formats="int8,edgetpu", calibration=16, verbose=False)
    e = b.entry("edgetpu")
    assert e.status == "ok" and e.extra["compiler"]["tpu_ops"] >= 1
