"""The agent's `batch` (many requests in one call: what makes a fleet host's rollout two agent calls instead of
a dozen) and `mkdirs` (the plan's folders), through the shipped zipapp under `python3 -I` as on a device."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from edgelite.errors import EXIT_CHECKSUM, EXIT_USAGE

from .test_agent import call, flip_a_byte, mini_bundle, pyz  # noqa: F401  (pyz: the zipapp fixture)


def incoming(root, name: str, bid_from) -> str:
    """Copy bundle `bid_from` into DIR/bundles/.incoming/<id> as a push would; returns the id."""
    import hashlib
    import shutil

    bid = hashlib.sha256((bid_from / "edgelite.json").read_bytes()).hexdigest()[:16]
    shutil.copytree(bid_from, root / "bundles" / ".incoming" / bid)
    return bid


def test_one_call_makes_the_folders_reads_the_status_and_checks_the_bundle(pyz, tmp_path):  # noqa: F811
    root = tmp_path / "edgelite"
    dirs = [str(root), str(root / "bundles" / ".incoming"), str(root / "wheels" / "edgelite" / "abc"),
            str(root / "media")]
    steps = [{"command": "mkdirs", "dir": str(root), "paths": dirs}, {"command": "status", "dir": str(root)},
             {"command": "prepare-bundle", "dir": str(root), "bundle": "0123456789abcdef"}]
    code, reply = call(pyz, {"command": "batch", "dir": str(root), "steps": steps}, tmp_path)
    assert code == 0 and reply["ok"], reply
    replies = reply["replies"]
    assert list(replies) == ["mkdirs", "status", "prepare-bundle"]
    assert replies["status"]["current"] is None and replies["prepare-bundle"]["present"] is False
    assert str(root / "wheels" / "edgelite" / "abc") in replies["mkdirs"]["made"]
    for d in dirs:  # as `mkdir -p` makes them (edgelite deploy's), not with the agent's own umask 077
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o755, d
    code, again = call(pyz, {"command": "batch", "dir": str(root), "steps": steps[:1]}, tmp_path)
    assert code == 0 and again["replies"]["mkdirs"]["made"] == []


def test_the_first_failing_step_ends_the_batch_and_says_which(pyz, tmp_path):  # noqa: F811
    """A damaged push: accept-bundle refuses it (exit 4, as alone); the release after it never runs."""
    root = tmp_path / "edgelite"
    bad = mini_bundle(tmp_path / "bad")
    flip_a_byte(bad / "model_int8.tflite")
    bid = incoming(root, "bad", bad)
    steps = [{"command": "accept-bundle", "bundle": bid},
             {"command": "release", "bundle": bid, "env": "e1", "source": "0", "http": "127.0.0.1:8080"}]
    code, reply = call(pyz, {"command": "batch", "dir": str(root), "steps": steps}, tmp_path)
    assert code == EXIT_CHECKSUM and not reply["ok"] and reply["step"] == "accept-bundle", reply
    assert reply["error"].startswith("accept-bundle: ") and reply["error"].endswith("; nothing was switched")
    assert list(reply["replies"]) == ["accept-bundle"] and reply["replies"]["accept-bundle"]["exit_code"] == EXIT_CHECKSUM
    assert not (root / "releases").exists() or not any((root / "releases").iterdir())


@pytest.mark.parametrize("steps,says", [
    ([], "non-empty list"),
    ([{"command": "status"}, {"command": "status"}], "runs once"),
    ([{"command": "batch", "steps": [{"command": "status"}]}], "not a batch"),
    ([{"command": "status", "detach": True}], "does not detach"),
    ([{"command": "status", "dir": "/elsewhere"}], "another folder"),
])
def test_a_bad_batch_is_refused_before_any_step_runs(pyz, tmp_path, steps, says):  # noqa: F811
    root = tmp_path / "edgelite"
    first = [{"command": "mkdirs", "paths": [str(root / "media")]}] if steps else []
    code, reply = call(pyz, {"command": "batch", "dir": str(root), "steps": first + steps}, tmp_path)
    assert code == EXIT_USAGE and says in reply["error"], reply
    assert not (root / "media").exists()  # the mkdirs before the bad step did not run either


@pytest.mark.parametrize("path", ["/etc/edgelite-x", "{root}/../outside", "relative/path"])
def test_mkdirs_makes_nothing_outside_the_deploy_folder(pyz, tmp_path, path):  # noqa: F811
    root = tmp_path / "edgelite"
    code, reply = call(pyz, {"command": "mkdirs", "dir": str(root), "paths": [path.format(root=root)]}, tmp_path)
    assert code == EXIT_USAGE and "not a folder inside" in reply["error"], reply
    assert not (tmp_path / "outside").exists() and not os.path.exists("/etc/edgelite-x")


def test_a_detached_batch_is_followed_to_its_reply(pyz, tmp_path):  # noqa: F811
    """What the fleet role does after the push: the batch as one detached job, then `wait` for its reply."""
    root = tmp_path / "edgelite"
    good = mini_bundle(tmp_path / "good")
    bid = incoming(root, "good", good)
    steps = [{"command": "accept-bundle", "bundle": bid}, {"command": "previous"}]
    code, job = call(pyz, {"command": "batch", "dir": str(root), "detach": True, "steps": steps}, tmp_path)
    assert code == 0 and job["job"].startswith("batch-") and job["follow_s"] >= 900, job
    deadline = time.monotonic() + 60
    while True:
        code, w = call(pyz, {"command": "wait", "dir": str(root), "job": job["job"], "timeout": 5}, tmp_path)
        if w.get("done") or time.monotonic() > deadline:
            break
    assert w["done"] and w["reply"]["ok"], w
    assert set(w["reply"]["replies"]) == {"accept-bundle", "previous"} and (root / "bundles" / bid).is_dir()
    assert json.loads((root / "run" / f"{job['job']}.json").read_text())["ok"]
