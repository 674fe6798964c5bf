"""The run directory has one owner: RunDir writes and reads every file of a run, and a missing, incomplete
or hand-edited run is one clear error. No other module spells a run's file names."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
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


ADAPTED = {"method": "bn", "source_run": "/runs/flowers", "unlabeled": "/frames", "batch_size": 32}


def test_an_adapted_run_loads_with_its_adaptation_record(run, tmp_path):
    """convert, bench and a further adapt read an adapted run through RunDir.load: the `adaptation:`
    section of its config.yaml is not a training setting, and it survives a save/load round trip."""
    import yaml

    run.adaptation = ADAPTED
    run.save()
    saved = yaml.safe_load(run.file(R.CONFIG).read_text())
    assert saved[R.ADAPTATION] == ADAPTED and saved["image_size"] == 24  # one mapping: settings + the section
    loaded = RunDir.load(run.path)
    assert loaded.adaptation == ADAPTED and loaded.config == run.config and loaded.read_config() == run.config
    assert RunDir.load(run.path).images("test")[0].shape[1:] == (24, 24, 3)
    settings = run.file(R.CONFIG).read_text().split(f"{R.ADAPTATION}:")[0]
    run.file(R.CONFIG).write_text(settings + f"{R.ADAPTATION}: 3\n")
    with pytest.raises(TrainError, match="adaptation is not a mapping"):
        RunDir.load(run.path)


def test_a_trained_run_has_no_adaptation(run):
    assert RunDir.load(run.path).adaptation is None
    assert R.ADAPTATION not in run.file(R.CONFIG).read_text()


def test_resume_of_an_adapted_run_is_a_one_line_error(run):
    """`edgelite train --resume` on an adapted run says what to resume instead (it has no training to continue)."""
    run.adaptation = ADAPTED
    run.save()
    before = run.file(R.CONFIG).read_bytes()
    env = dict(os.environ, PYTHONPATH=str(EDGELITE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "edgelite", "train", "--out", str(run.path), "--resume"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        f"edgelite train: error: --resume: {run.path} was written by `edgelite adapt` from /runs/flowers and has "
        "no training to continue; resume /runs/flowers (then adapt it again) or train a new run"]
    assert run.file(R.CONFIG).read_bytes() == before
    run.adaptation = None
    run.save()
    assert R.ADAPTATION not in RunDir(run.path).settings_to_resume()


def test_images_limit_is_a_seeded_sample_in_split_order(run):
    loaded = RunDir.load(run.path)
    x, y, _ = loaded.images("train")
    a = loaded.images("train", limit=4, seed=1)
    assert len(a[1]) == 4 and np.array_equal(a[0], loaded.images("train", limit=4, seed=1)[0])
    rows = [next(i for i in range(len(x)) if np.array_equal(x[i], img)) for img in a[0]]
    assert rows == sorted(rows) and list(y[rows]) == list(a[1])  # a subset of the split, in its order
    assert len(loaded.images("train", limit=100)[1]) == len(y)


def test_staged_run_appears_whole_or_not_at_all(run, tmp_path):
    dest = tmp_path / "new"
    with pytest.raises(RuntimeError, match="half-way"), RunDir.staged(dest) as new:
        new.config, new.labels, new.split = run.config, run.labels, run.split
        new.save()
        raise RuntimeError("a crash half-way")  # no folder at dest, no hidden stage left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"]
    with RunDir.staged(dest) as new:
        new.config, new.labels, new.split = run.config, run.labels, run.split
        new.save()
        new.copy_from(RunDir.load(run.path), [R.MODEL, R.HISTORY])  # HISTORY: the source has none
        assert not dest.exists()
    assert new.path == dest and sorted(p.name for p in tmp_path.iterdir()) == ["data", "new", "run"]
    assert RunDir.load(dest).labels == run.labels and not RunDir(dest).file(R.HISTORY).exists()
    assert RunDir(dest).file(R.MODEL).read_bytes() == b"placeholder"
    with RunDir.staged(dest) as again:  # replaces the run there
        again.config, again.labels, again.split = run.config, ["a", "b", "c"], run.split
        again.save()
    assert RunDir(dest).missing() == [R.MODEL]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "new", "run"]


def test_a_corrupt_model_file_is_a_one_line_error(run):
    with pytest.raises(TrainError, match=r"cannot load .*model.keras: .* re-run `edgelite train`"):
        RunDir.load(run.path).load_model()


def _string_constants(tree: ast.AST):
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings:
            yield n


def test_no_other_module_spells_a_run_file_name():
    names = {R.MODEL, R.CONFIG, R.SPLIT, R.METRICS, R.HISTORY, R.CURVES, R.CONFUSION, R.SKIPPED, R.CHECKPOINTS,
             R.LAST_WEIGHTS, R.BEST_WEIGHTS, R.ADAPT_HISTORY, R.PSEUDO_LABELS}
    found = []
    for f in sorted(EDGELITE.rglob("*.py")):
        # the device agent's own state.json is not a run's; a cli.py's help and examples name user files
        if f == EDGELITE / "train" / "rundir.py" or f.name == "cli.py" or "deploy" in f.parts:
            continue
        for n in _string_constants(ast.parse(f.read_text(), str(f))):
            found += [f"{f.relative_to(EDGELITE.parent)}:{n.lineno} {name}" for name in names if name in n.value]
    assert not found, "use the constants of edgelite.train.rundir:\n" + "\n".join(found)
