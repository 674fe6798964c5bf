"""`edgelite review --retrain`: a real run (tests/adapt's, trained once a session) fine-tuned on frames
labelled through the review's Store, with the labelled frames' held-out part scored before and after."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgelite.review.errors import ReviewError
from tests.adapt.conftest import domain, tree_hashes  # noqa: F401  (the session fixture: a trained run)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def label_shifted(domain, tmp_path) -> Path:  # noqa: F811
    """The shifted evaluation photos as a device's frames, each labelled with its class by the review."""
    from edgelite.review.core import open_review

    frames, data = tmp_path / "frames", tmp_path / "data"
    shutil.copytree(domain.root / "data", data)  # the training photos (labelling writes into them)
    truth = {}
    for i, f in enumerate(sorted(domain.eval.rglob("*.png"))):
        frames.mkdir(exist_ok=True)
        name = f"20261130-2045{i // 60 % 60:02d}-{i % 1000:03d}_{f.stem}.png"
        shutil.copy(f, frames / name)
        truth[name] = f.parent.name
    store = open_review(frames, data)
    for g in store.index.order:
        f = store.index.representative(g)
        store.decide(g, "label", truth[f.rel])
    return data


def test_retrain_reports_the_held_out_labelled_frames_per_class(domain, tmp_path):  # noqa: F811
    from edgelite.review.retrain import HELDOUT_LIST, retrain
    from edgelite.train.rundir import RunDir

    data = label_shifted(domain, tmp_path)
    with open(data / "review.csv", newline="") as fh:
        labelled = [r for r in csv.DictReader(fh) if r["action"] == "label"]
    lines = []
    r = retrain(domain.run, data, tmp_path / "reviewed", epochs=2, say=lines.append)
    n_held = r["heldout"]["after"]["n"]
    assert r["frames_train"] + n_held == len(labelled) and 0.2 < n_held / len(labelled) < 0.4
    per_class = r["heldout"]["after"]["per_class"]
    assert set(per_class) == set(domain.labels) and all(len(v["ci95"]) == 2 for v in per_class.values())
    d = r["heldout"]["delta"]
    assert d["images"] == n_held and d["ci"][0] <= d["delta"] <= d["ci"][1]
    assert "held-out labelled frames" in lines[-1] and "next: edgelite convert" in lines[-1]
    new = RunDir.load(tmp_path / "reviewed")  # a run like any other: convert, bench, deploy take it
    assert new.adaptation["method"] == "review" and new.labels == domain.labels
    held = (tmp_path / "reviewed" / HELDOUT_LIST).read_text().splitlines()[1:]
    assert len(held) == n_held
    assert json.loads((tmp_path / "reviewed" / "metrics.json").read_text())["adaptation"]["clean_test"]["n"] > 0
    assert tree_hashes(domain.run) == domain.hashes  # the source run is never modified


def test_retrain_refuses_what_it_cannot_learn(domain, tmp_path):  # noqa: F811
    from edgelite.review.retrain import retrain

    with pytest.raises(ReviewError, match="label frames first"):
        retrain(domain.run, tmp_path, tmp_path / "out")
    data = label_shifted(domain, tmp_path)
    with open(data / "review.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    (data / "zebra").mkdir()  # a class the run does not have: its head cannot learn it
    os.replace(data / rows[0]["file"], data / "zebra" / Path(rows[0]["file"]).name)
    rows[0].update(file="zebra/" + Path(rows[0]["file"]).name, label="zebra")
    with open(data / "review.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(ReviewError, match="'zebra' is not one of the run's classes"):
        retrain(domain.run, data, tmp_path / "out")
    p = subprocess.run([sys.executable, "-m", "edgelite", "review", "--data", str(data), "--retrain",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 2 and "--retrain needs --run" in p.stderr and p.stderr.count("\n") == 1
