"""`edgelite convert`'s flags and `ConvertOptions` are one list: every field has a flag, every flag a field
(or is one of `convert`'s two arguments), with the same defaults, so the CLI and the Python API cannot drift."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

from edgelite.cli import build_parser
from edgelite.convert import core
from edgelite.convert.options import ConvertOptions
from edgelite.options import field_names, from_namespace


def _command(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if a.dest != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)}


def test_every_convert_option_field_has_a_flag_and_every_flag_a_field():
    arguments = {n for n, p in inspect.signature(core.convert).parameters.items()
                 if p.kind is p.POSITIONAL_OR_KEYWORD and n != "options"}
    assert arguments == {"source", "out"}
    dests = _dests(_command("convert")) - arguments
    fields = field_names(ConvertOptions)
    assert not fields - dests, f"ConvertOptions fields without a flag: {sorted(fields - dests)}"
    assert not dests - fields, f"convert flags without a ConvertOptions field: {sorted(dests - fields)}"


def test_no_flags_means_the_dataclass_defaults():
    args = build_parser().parse_args(["convert", "runs/demo", "--out", "bundles/demo"])
    assert from_namespace(ConvertOptions, args) == ConvertOptions()


def test_every_flag_reaches_its_field():
    argv = ["convert", "runs/demo", "--out", "b", "--formats", "int8,onnx", "--prune", "50", "--prune-epochs", "6",
            "--prune-block", "4", "--prune-lr", "2e-4", "--qat", "--qat-epochs", "3", "--qat-lr", "3e-5",
            "--auto-qat", "1", "--calibration", "64", "--calibration-data", "frames", "--per-tensor", "--io-type", "int8", "--max-drop", "1.5", "--data", "photos",
            "--opset", "13", "--batch-size", "8", "--seed", "7", "--trust-model", "--overwrite", "-q"]
    options = from_namespace(ConvertOptions, build_parser().parse_args(argv))
    assert options == ConvertOptions(formats="int8,onnx", prune=0.5, prune_epochs=6, prune_block=4, prune_lr=2e-4,
                                     qat=True, qat_epochs=3, qat_lr=3e-5, auto_qat=1.0, calibration=64, calibration_data="frames",
                                     per_tensor=True,
                                     io_type="int8", max_drop=1.5, data="photos", opset=13, batch_size=8, seed=7,
                                     trust_model=True, overwrite=True, verbose=False)
    changed = {f.name for f in dataclasses.fields(options) if getattr(options, f.name) != f.default}
    assert changed == field_names(ConvertOptions), "the command line above must set every option"


def test_no_auto_qat_turns_it_off_and_cannot_go_with_a_threshold(capsys):
    args = build_parser().parse_args(["convert", "runs/demo", "--out", "b", "--no-auto-qat"])
    assert from_namespace(ConvertOptions, args).auto_qat is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["convert", "runs/demo", "--out", "b", "--no-auto-qat", "--auto-qat", "1"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_keywords_replace_the_options_and_an_unknown_one_is_named(tmp_path):
    base = ConvertOptions(prune=0.5, seed=3)
    assert ConvertOptions.make(base, seed=4) == ConvertOptions(prune=0.5, seed=4)
    with pytest.raises(TypeError, match="unknown option.*prune_sparsity.*known: formats, prune"):
        core.convert(tmp_path / "run", tmp_path / "b", prune_sparsity=0.5)
