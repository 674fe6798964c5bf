"""`edgelite train` / `edgelite data` flags and their options dataclasses are one list: every field has a flag
and every flag a field, so the CLI, the Python API and the run's config.yaml cannot drift apart."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from edgelite.cli import build_parser
from edgelite.options import field_names, from_namespace
from edgelite.train.config import RUN_CONTROL, DataOptions, TrainConfig, TrainOptions


def _command(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if a.dest != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)}


@pytest.mark.parametrize("command, options", [("train", TrainOptions), ("data", DataOptions)])
def test_every_option_field_has_a_flag_and_every_flag_a_field(command, options):
    dests, fields = _dests(_command(command)), field_names(options)
    assert not fields - dests, f"{options.__name__} fields without an `edgelite {command}` flag: {sorted(fields - dests)}"
    assert not dests - fields, f"`edgelite {command}` flags without a {options.__name__} field: {sorted(dests - fields)}"


def test_train_options_are_every_saved_setting_plus_how_to_run():
    assert field_names(TrainOptions) == field_names(TrainConfig) | set(RUN_CONTROL)


def test_no_train_flags_means_nothing_given_so_yaml_and_defaults_decide():
    options = from_namespace(TrainOptions, build_parser().parse_args(["train", "photos", "--out", "runs/a"]))
    assert options == TrainOptions(data_dir="photos", out="runs/a") and options.settings() == {}


def test_every_train_flag_reaches_its_field():
    argv = ["train", "photos", "--out", "runs/a", "--backbone", "mobilenet_v2", "--image-size", "96", "--epochs", "4",
            "--cached-views", "3", "--fine-tune-epochs", "2", "--unfreeze", "3", "--batch-size", "8", "--lr", "0.01", "--fine-tune-lr", "1e-5",
            "--label-smoothing", "0.05", "--dropout", "0.3", "--no-augment", "--class-weights", "none",
            "--val-split", "0.2", "--test-split", "0.15", "--weights", "none", "--seed", "5", "--patience", "2",
            "--interpolation", "area", "--config", "t.yaml", "--resume", "--overwrite", "--strategy", "mirrored"]
    options = from_namespace(TrainOptions, build_parser().parse_args(argv))
    assert options.settings() == dict(backbone="mobilenet_v2", image_size=96, epochs=4, cached_views=3, fine_tune_epochs=2, unfreeze=3,
                                      batch_size=8, lr=0.01, fine_tune_lr=1e-5, label_smoothing=0.05, dropout=0.3,
                                      augment=False, class_weights="none", val_split=0.2, test_split=0.15,
                                      weights="none", seed=5, patience=2, interpolation="area", strategy="mirrored")
    assert (options.data_dir, options.out, options.config, options.resume, options.overwrite) == (
        "photos", "runs/a", "t.yaml", True, True)
    untouched = {f.name for f in dataclasses.fields(options) if getattr(options, f.name) == f.default}
    assert not untouched, f"the command line above must set every option: {sorted(untouched)}"


def test_data_flags_default_to_the_dataclass_and_reach_their_fields():
    parse = build_parser().parse_args
    assert from_namespace(DataOptions, parse(["data", "fashion-mnist", "d"])) == DataOptions(out="d")
    options = from_namespace(DataOptions, parse(["data", "fashion-mnist", "d", "--per-class", "5", "--size", "32",
                                                 "--seed", "2", "--source", "idx", "--test-per-class", "7"]))
    assert options == DataOptions(out="d", per_class=5, size=32, seed=2, source="idx", test_per_class=7)


def test_train_keywords_replace_options_and_an_unknown_one_is_named(tmp_path):
    from edgelite.train.finetune import train

    base = TrainOptions(epochs=3, seed=1)
    assert TrainOptions.make(base, seed=2, lr=None) == TrainOptions(epochs=3, seed=2)
    with pytest.raises(TypeError, match="unknown option.*epochz"):
        train(tmp_path / "photos", tmp_path / "run", epochz=3)
