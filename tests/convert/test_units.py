"""Cheap checks: the formats table, the metadata reader, import hygiene, the CLI wiring."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgelite.bundle import FORMATS
from edgelite.convert.errors import ConvertError
from edgelite.convert.formats import DEFAULT_FORMATS, EXPORTS, parse_formats


def test_exports_table_matches_the_bundle_formats():
    assert set(EXPORTS) == set(FORMATS)
    for name, exp in EXPORTS.items():
        assert (exp.file_format, exp.precision) == FORMATS[name]
    assert len({e.filename for e in EXPORTS.values()}) == len(EXPORTS)


@pytest.mark.parametrize("spec, kw, expected", [
    (None, {}, list(DEFAULT_FORMATS[:4]) + ["edgetpu", "onnx"]),
    ("INT8, half,tflite", {}, ["fp32", "fp16", "int8"]),
    ("int8", {"prune": 0.5}, ["int8", "pruned_int8"]),
    ("int8", {"qat": True}, ["int8", "qat_int8"]),
    ("int8", {"prune": 0.5, "qat": True}, ["int8", "pruned_int8", "pqat_int8"]),
    ("qat_int8", {"qat": True}, ["qat_int8"]),
    ("edge-tpu,onnx", {}, ["edgetpu", "onnx"]),
])
def test_parse_formats(spec, kw, expected):
    assert parse_formats(spec, **kw) == expected


@pytest.mark.parametrize("spec, kw, match", [
    ("fp64", {}, "unknown format 'fp64'"),
    (",", {}, "--formats is empty"),
    ("qat_int8", {}, "needs --qat"),
    ("pqat_int8", {"qat": True}, "needs both"),
])
def test_parse_formats_errors(spec, kw, match):
    with pytest.raises(ConvertError, match=match):
        parse_formats(spec, **kw)


def test_importing_convert_is_light():
    code = ("import sys, edgelite.convert, edgelite.convert.cli, edgelite.convert.formats, edgelite.convert.errors, "
            "edgelite.convert.report, edgelite.convert.metadata; "
            "heavy = [m for m in ('tensorflow', 'tf_keras', 'tensorflow_model_optimization', 'tf2onnx', 'onnx') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_metadata_reader_is_standard_library_only():
    code = ("import sys; import edgelite.convert.metadata as m; "
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('numpy', 'tensorflow', 'flatbuffers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_metadata_reader_rejects_non_tflite(tmp_path):
    from edgelite.convert.metadata import read_metadata

    p = tmp_path / "x.tflite"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        read_metadata(p)


def test_cli_help_lists_the_flags(capsys):
    from edgelite.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["convert", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--formats", "--prune", "--prune-epochs", "--prune-block", "--qat", "--qat-epochs", "--calibration",
                 "--per-tensor", "--io-type", "--max-drop", "--data"):
        assert flag in text


def test_cli_prune_accepts_percent():
    from edgelite.convert.cli import _fraction

    assert _fraction("0.5") == 0.5 and _fraction("50") == 0.5
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        _fraction("0")
