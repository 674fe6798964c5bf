"""Bad input to `edgelite adapt` is a one-line error that says what to do, and the source run is untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgelite.adapt.errors import AdaptError
from tests.adapt.conftest import SIZE, tree_hashes

REPO = Path(__file__).resolve().parents[2]


def cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "edgelite", "adapt", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def adapt(*args, **kw):
    from edgelite.adapt import adapt as _adapt

    return _adapt(*args, verbose=False, **kw)


def test_empty_folder_is_a_one_line_cli_error(domain, tmp_path):
    (tmp_path / "empty").mkdir()
    p = cli(domain.run, "--unlabeled", tmp_path / "empty", "--out", tmp_path / "out")
    assert p.returncode == 2, p.stderr
    err = [line for line in p.stderr.splitlines() if line.startswith("edgelite adapt: error:")]
    assert len(err) == 1 and "holds no images" in err[0] and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()
    assert tree_hashes(domain.run) == domain.hashes


def test_unreadable_images(domain, tmp_path):
    bad = tmp_path / "frames"
    bad.mkdir()
    for i in range(20):
        (bad / f"frame_{i}.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(AdaptError, match=r"only 0 readable image\(s\) \(20 unreadable, e\.g\. frame_0\.jpg"):
        adapt(domain.run, bad, tmp_path / "out")


def test_too_few_images(domain, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for f in sorted(domain.unlabeled.iterdir())[:5]:
        shutil.copy(f, few / f.name)
    with pytest.raises(AdaptError, match="only 5 readable image.*at least 16"):
        adapt(domain.run, few, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", ["bn", "tent"])
def test_model_without_batchnorm(domain, tmp_path, method):
    from tests.kit import tf_keras

    _, keras = tf_keras()
    run = tmp_path / "run"
    shutil.copytree(domain.run, run)
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Rescaling(1 / 255.0)(inp)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(h))
    keras.Model(inp, keras.layers.Dense(len(domain.labels), activation="softmax")(h)).save(run / "model.keras")
    before = tree_hashes(run)
    with pytest.raises(AdaptError, match=f"no BatchNorm layers, so --method {method} has nothing to adapt.*"
                                         "use --method pseudo"):
        adapt(run, domain.unlabeled, tmp_path / "out", method=method)
    assert tree_hashes(run) == before


def test_out_must_not_be_the_source_run(domain):
    with pytest.raises(AdaptError, match="not the source run"):
        adapt(domain.run, domain.unlabeled, domain.run, overwrite=True)
    with pytest.raises(AdaptError, match="not the source run"):
        adapt(domain.run, domain.unlabeled, domain.run / "inside")
    assert tree_hashes(domain.run) == domain.hashes


def test_existing_out_needs_overwrite(domain, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(AdaptError, match="--overwrite"):
        adapt(domain.run, domain.unlabeled, tmp_path / "out")
    with pytest.raises(AdaptError, match="not a run directory"):
        adapt(domain.run, domain.unlabeled, tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_eval_folder_with_an_unknown_class(domain, tmp_path):
    ev = tmp_path / "eval"
    shutil.copytree(domain.eval / domain.labels[0], ev / "zebra")
    with pytest.raises(AdaptError, match="zebra are not classes of the run"):
        adapt(domain.run, domain.unlabeled, tmp_path / "out", eval_dir=ev)


def test_not_a_run_and_bad_settings(domain, tmp_path):
    with pytest.raises(AdaptError, match="not a run directory"):
        adapt(tmp_path / "nope", domain.unlabeled, tmp_path / "out")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "labels.txt").write_text("a\nb\n")
    with pytest.raises(AdaptError, match="missing model.keras, config.yaml, split.json"):
        adapt(tmp_path / "half", domain.unlabeled, tmp_path / "out")
    with pytest.raises(AdaptError, match="--threshold"):
        adapt(domain.run, domain.unlabeled, tmp_path / "out", method="pseudo", threshold=1.5)
