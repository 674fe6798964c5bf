"""The run directory has one owner: RunDir writes and reads every file of a run, and a missing, incomplete
or hand-edited run is one clear error. No other module spells a run's file names."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from edgelite.train import data as D
from edgelite.train import rundir as R
from edgelite.train.config import TrainConfig
from edgelite.train.errors import TrainError
from edgelite.train.rundir import RunDir
from tests.train.conftest import make_shapes_dataset

EDGELITE = Path(__file__).resolve().parents[2] / "edgelite"


@pytest.fixture
def run(tmp_path) -> RunDir:
    """A run as `train` leaves it before the model exists, plus a placeholder model file."""
    data = make_shapes_dataset(tmp_path / "data", per_class=6, nested=False)
    classes, items, skipped = D.scan(data)
    split = D.stratified_split(items, classes, seed=0, data_dir=str(data))
    cfg = TrainConfig(data_dir=str(data), out=str(tmp_path / "run"), image_size=24, interpolation="area")
    r = RunDir(tmp_path / "run", config=cfg, labels=classes, split=split,
               skipped=[D.Skipped("circle/bad.jpg", "cannot identify image file")])
    r.save()
    r.model_path.write_bytes(b"placeholder")
    return r


def test_save_then_load_gives_back_the_same_run(run):
    loaded = RunDir.load(run.path)
    assert loaded.labels == ["circle", "square", "triangle"]
    assert loaded.config == run.config and loaded.split == run.split and loaded.skipped == run.skipped
    assert loaded.metrics == {}  # training has not finished: no metrics.json yet
    assert sorted(p.name for p in run.path.iterdir()) == sorted([R.MODEL, R.LABELS, R.CONFIG, R.SPLIT, R.SKIPPED])


def test_images_decode_the_split_at_the_runs_size_and_interpolation(run):
    x, y, skipped = RunDir.load(run.path).images("test")
    assert x.shape == (len(run.split.test), 24, 24, 3) and x.dtype == np.uint8 and not skipped
    want, _, _ = D.load_images(run.split.data_dir, run.split.test, (24, 24), "area")
    assert np.array_equal(x, want) and list(y) == [label for _, label in run.split.test]
    assert np.array_equal(R.load_split_images(run.path, "test")[0], x)


def test_images_of_a_moved_data_folder_say_what_to_do(run, tmp_path):
    loaded = RunDir.load(run.path)
    Path(loaded.split.data_dir).rename(tmp_path / "moved")
    with pytest.raises(D.DataError, match="is gone; pass --data DIR"):
        loaded.images("test")
    assert len(loaded.images("test", data_dir=tmp_path / "moved")[1]) == len(run.split.test)


def test_incomplete_run_names_the_missing_files(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / R.MODEL).write_bytes(b"x")
    with pytest.raises(TrainError, match=r"not a complete run directory: missing labels.txt, config.yaml, split.json"):
        RunDir.load(tmp_path / "run")
    with pytest.raises(TrainError, match="is not a run directory"):
        RunDir.load(tmp_path / "nope")


def test_hand_edited_labels_and_corrupt_config_are_refused(run):
    with open(run.file(R.LABELS), "a") as f:
        f.write("hexagon\n")
    with pytest.raises(TrainError, match=r"labels.txt \(4 labels\) disagrees with split.json's classes"):
        RunDir.load(run.path)
    run.save()  # labels back as they were
    run.file(R.CONFIG).write_text("image_size: [oops\n")
    with pytest.raises(TrainError, match="config.yaml is corrupt"):
        RunDir.load(run.path)
    run.file(R.CONFIG).write_text("image_size: 24\ninterpolation: lanczos\n")
    with pytest.raises(TrainError, match="unknown interpolation 'lanczos'"):
        RunDir.load(run.path)


def test_metrics_are_read_when_present_and_ignored_when_corrupt(run):
    run.file(R.METRICS).write_text(json.dumps({"test": {"accuracy": 0.9}}))
    assert RunDir.load(run.path).metrics["test"]["accuracy"] == 0.9
    run.file(R.METRICS).write_text("{not json")
    assert RunDir.load(run.path).metrics == {}


def test_checkpoint_state_is_read_only_with_its_weights(tmp_path):
    class Weights:  # what save_checkpoint needs of a Keras model
        def save_weights(self, path):
            Path(path).write_bytes(b"h5")

    work = RunDir(tmp_path)
    assert work.read_state() is None
    work.checkpoints.mkdir()
    work.save_checkpoint(Weights(), {"phase": 1, "epoch": 2, "history": []})
    assert work.read_state() == {"phase": 1, "epoch": 2, "history": []}
    assert sorted(p.name for p in work.checkpoints.iterdir()) == [R.LAST_WEIGHTS, R.STATE]  # no temp files left
    (work.checkpoints / R.LAST_WEIGHTS).unlink()
    assert work.read_state() is None


def test_load_model_of_a_folder_without_one_says_so(tmp_path):
    with pytest.raises(TrainError, match="has no model.keras"):
        R.load_run_model(tmp_path)


def _string_constants(tree: ast.AST):
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings:
            yield n


def test_no_other_module_spells_a_run_file_name():
    names = {R.MODEL, R.CONFIG, R.SPLIT, R.METRICS, R.HISTORY, R.CURVES, R.CONFUSION, R.SKIPPED, R.CHECKPOINTS,
             R.LAST_WEIGHTS, R.BEST_WEIGHTS}
    found = []
    for f in sorted(EDGELITE.rglob("*.py")):
        # the device agent's own state.json is not a run's; a cli.py's help and examples name user files
        if f.name in ("rundir.py", "cli.py") or "deploy" in f.parts:
            continue
        for n in _string_constants(ast.parse(f.read_text(), str(f))):
            found += [f"{f.relative_to(EDGELITE.parent)}:{n.lineno} {name}" for name in names if name in n.value]
    assert not found, "use the constants of edgelite.train.rundir:\n" + "\n".join(found)
