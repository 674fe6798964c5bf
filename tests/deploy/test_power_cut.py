"""What a power cut leaves on a device's SD card, and the agent living with it.

A cut loses what the kernel had not written out: ext4 commits a rename before the delayed data of the file
it names, so a folder can come back holding empty files under their final names, a JSON file torn, a folder
half deleted. The agent writes so that this does not happen (fsync of files and folders before each rename:
`edgelite.jsonfile`), and these tests put the device folder in the states a cut left on older agents, to
check that nothing half-written is ever run or selected. The cut itself, on the emulated Pi, is
tests/vm/test_vm_power_cut.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from edgelite import jsonfile
from edgelite.deploy.agent.__main__ import handle
from edgelite.deploy.agent.layout import Layout

from .test_agent import call, pyz  # noqa: F401  (the fixture)


def test_an_agent_copy_emptied_by_a_power_cut_is_unpacked_again(pyz, tmp_path):  # noqa: F811
    """The agent unpacks itself beside agent.pyz once (keyed by its sha256); a cut right after left that folder
    with every .py file empty. The same agent pushed again (a rerun of the deploy: the same key) must not run
    the empty copy: on the parent commit every request after the cut failed, the rerun too."""
    dev = tmp_path / "dev"
    dev.mkdir()
    shutil.copy2(pyz, dev / "agent.pyz")
    key = hashlib.sha256((dev / "agent.pyz").read_bytes()).hexdigest()[:16]
    unpacked = dev / ".agent" / key
    code, reply = call(dev / "agent.pyz", {"command": "status", "dir": str(dev)}, tmp_path)
    assert code == 0 and reply["ok"], reply
    # what ext4 brings back after a cut: the names (the rename was committed), no data (delayed allocation)
    for p in unpacked.rglob("*"):
        if p.is_file():
            p.write_bytes(b"")
    (unpacked / ".complete").unlink(missing_ok=True)  # written last, after the fsyncs: never there in that state
    code, reply = call(dev / "agent.pyz", {"command": "status", "dir": str(dev)}, tmp_path)
    assert code == 0 and reply["ok"], reply
    assert (unpacked / "edgelite" / "deploy" / "agent" / "status.py").stat().st_size > 0


def _release(lay: Layout, rid: str, *, run: bool = True) -> None:
    d = lay.releases / rid
    d.mkdir(parents=True)
    jsonfile.write_json(d / "release.json", {"id": rid, "bundle": "b", "venv": "v", "http": "127.0.0.1:1"})
    if run:
        (d / "run").write_text("#!/bin/sh\nexec true\n")


def test_a_release_a_power_cut_left_half_written_or_half_removed_is_never_selected(tmp_path):
    """Rollback goes to the newest good release older than `current`. Between them: one whose release.json a cut
    tore (zeros), one whose `run` a cut left empty, one a cut interrupted while gc removed it (its `run` gone,
    its release.json still there). None of them may be picked: the rollback goes to r1, status reads."""
    lay = Layout(tmp_path / "dev")
    lay.ensure()
    for rid in ("r1", "r2", "r3", "r4", "r5"):
        _release(lay, rid, run=rid != "r4")
    (lay.releases / "r2" / "release.json").write_bytes(b"\0" * 300)  # torn
    (lay.releases / "r3" / "run").write_bytes(b"")  # emptied
    os.symlink("releases/r5", lay.current)
    assert lay.release_ids() == ["r1", "r5"]
    reply = handle({"command": "previous", "dir": str(lay.root)})
    assert reply["ok"] and reply["previous"] == "r1", reply
    st = handle({"command": "status", "dir": str(lay.root)})
    assert st["ok"] and [r["id"] for r in st["releases"]] == ["r1", "r5"], st


def test_gc_removes_a_release_out_of_sight_first_and_finishes_what_a_cut_interrupted(tmp_path):
    """gc renames a folder to a hidden `.gc-` name before deleting it (a cut mid-delete leaves nothing half
    there under a release's name), and the next gc deletes what a cut left: `.gc-*`, `.*.partial`."""
    from edgelite.deploy.agent.status import gc

    lay = Layout(tmp_path / "dev")
    lay.ensure()
    for rid in ("r1", "r2", "r3"):
        _release(lay, rid)
    os.symlink("releases/r3", lay.current)
    (lay.releases / ".gc-r0").mkdir()
    (lay.releases / ".r9.partial").mkdir()
    removed = gc(lay, keep=2)
    assert sorted(p.name for p in lay.releases.iterdir()) == ["r2", "r3"]
    assert {"releases/.gc-r0", "releases/.r9.partial", "r1"} <= set(removed), removed


def test_state_files_are_fsynced_with_their_folder(tmp_path, monkeypatch):
    """write_json: fsync the temp file, rename, fsync the folder; a torn file reads as missing."""
    synced: list[str] = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    p = tmp_path / "state.json"
    jsonfile.write_json(p, {"a": 1})
    assert len(synced) == 2 and Path(synced[0]).name.startswith(".state.json.") and synced[1] == str(tmp_path)
    p.write_bytes(b'{"a": 1, "b": [\0\0\0')  # torn
    assert jsonfile.read_json(p, {"fallback": True}) == {"fallback": True}


def _agent_at(pyz_path: Path, request: dict, cwd: Path, offset: str | None = None) -> dict:
    """One zipapp call, its wall clock moved by `offset` under Debian's faketime (the clock a Pi without an RTC
    boots with); the agent's own code path, nothing patched."""
    import json
    import subprocess
    import sys

    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    cmd = ([shutil.which("faketime") or "faketime", "-f", offset] if offset else []) + [python, "-I", str(pyz_path)]
    # the kernel's monotonic clock does not follow a wrong wall clock: only the wall clock is moved
    r = subprocess.run(cmd, input=json.dumps(request), capture_output=True, text=True, timeout=120, cwd=cwd,
                       env={"PATH": os.environ["PATH"], "HOME": str(cwd), "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    reply = json.loads(r.stdout.splitlines()[-1])
    assert reply["ok"], (reply, r.stderr[-2000:])
    return reply


def test_a_clock_a_year_behind_does_not_reorder_releases(pyz, tmp_path):  # noqa: F811
    """A Pi without a real-time clock boots a year behind and deploys: its new release's id (the device's UTC
    time) sorts before the older ones. Rollback and gc must follow the agent's own sequence instead: rollback
    from the newest goes to the one deployed just before it, gc keeps the newest. On the parent commit the
    rollback found nothing older and gc removed the release deployed second."""
    import pytest

    if not shutil.which("faketime"):
        pytest.skip("needs Debian's faketime (apt-get install faketime)")
    lay = Layout(tmp_path / "dev")
    lay.ensure()
    (lay.bundles / "b1").mkdir()
    (lay.venvs / "e1").mkdir()
    (lay.venvs / "e1" / ".ready").write_text("{}")
    base = {"dir": str(lay.root), "bundle": "b1", "env": "e1", "source": "0", "http": "127.0.0.1:1"}
    _agent_at(pyz, {"command": "configure", "dir": str(lay.root), "mode": "none", "user": "pi"}, tmp_path)
    made = []
    for offset in (None, "-364d", "-365d"):  # deployed today, then with the clock a year behind (and going back)
        rid = _agent_at(pyz, {"command": "release", **base}, tmp_path, offset)["release"]
        # (the switch itself reads no wall clock; it runs unfaked: libfaketime breaks subprocess's waits)
        _agent_at(pyz, {"command": "commit", "dir": str(lay.root), "release": rid, "no_service": True}, tmp_path)
        made.append(rid)
    first, second, third = made
    assert third < second < first  # by name the newest is the oldest: the clock went back
    assert lay.current_rid() == third
    assert lay.release_ids() == made
    assert _agent_at(pyz, {"command": "previous", "dir": str(lay.root)}, tmp_path)["previous"] == second
    from edgelite.deploy.agent.status import gc

    gc(lay, keep=1)
    assert lay.release_ids() == [third]  # the newest by sequence, which is current, stays; not `first`
    st = _agent_at(pyz, {"command": "status", "dir": str(lay.root)}, tmp_path, "-365d")
    assert st["clock"]["device_time"].startswith(str(int(first[:4]) - 1)) and st["clock"]["since_boot_s"] > 0
    assert [r["seq"] for r in st["releases"]] == [3]


def test_a_card_too_full_for_a_release_is_one_line_and_leaves_nothing_half_written(tmp_path):
    """The device folder on a real 1 MB filesystem (tmpfs), filled: writing the release fails cleanly (exit 8,
    one line with the free space and what to do), no `.partial` stays, `current` still points at the
    release that serves. On the parent commit: "OSError: [Errno 28] ...", exit 1, and the half-written
    release left behind."""
    import subprocess

    import pytest

    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    card = tmp_path / "card"
    card.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(card)], check=True)
    try:
        lay = Layout(card / "edgelite")
        lay.ensure()
        (lay.bundles / "b1").mkdir()
        (lay.venvs / "e1").mkdir()
        (lay.venvs / "e1" / ".ready").write_text("{}")
        _release(lay, "r1")
        os.symlink("releases/r1", lay.current)
        with open(card / "filler", "wb", buffering=0) as f:  # every last block
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError:
                pass
        reply = handle({"command": "release", "dir": str(lay.root), "bundle": "b1", "env": "e1", "source": "0",
                        "http": "127.0.0.1:1"})
        assert not reply["ok"] and reply["exit_code"] == 8, reply
        assert reply["error"].startswith("cannot write release ") and "No space left on device" in reply["error"]
        assert "\n" not in reply["error"] and "make room" in reply["error"]
        assert sorted(p.name for p in lay.releases.iterdir()) == ["r1"] and lay.current_rid() == "r1"
    finally:
        subprocess.run(["umount", "-l", str(card)], check=False)


def test_the_releases_kept_are_the_number_asked_for_with_or_without_a_service(tmp_path):
    """Five deploys through the real agent with `keep` 2: after each switch the two newest releases stay (and the
    venvs and bundles only they use go); the same with --no-service, which on the parent commit removed nothing
    (a device deployed --no-service kept every release until the card was full), and the parent had no `keep`.
    A rollback removes nothing; a keep below 1 is refused before anything is switched."""

    lay = Layout(tmp_path / "dev")
    lay.ensure()
    assert handle({"command": "configure", "dir": str(lay.root), "mode": "none", "user": "pi"})["ok"]
    made = []
    for n, (bundle, env) in enumerate([("b1", "e1"), ("b1", "e1"), ("b2", "e2"), ("b2", "e2"), ("b2", "e2")]):
        (lay.bundles / bundle).mkdir(exist_ok=True)  # pushed, then accepted
        (lay.venvs / env).mkdir(exist_ok=True)
        (lay.venvs / env / ".ready").write_text("{}")
        (lay.run / f"venv-{env}.lock").touch()  # what building it left
        rel = handle({"command": "release", "dir": str(lay.root), "bundle": bundle, "env": env, "source": "0",
                      "http": "127.0.0.1:1", "print_every": n})
        made.append(rel["release"])
        reply = handle({"command": "commit", "dir": str(lay.root), "release": made[-1], "no_service": True, "keep": 2})
        assert reply["ok"], reply
        assert lay.release_ids() == made[-2:] and lay.current_rid() == made[-1]
    assert sorted(os.listdir(lay.bundles)) == [".incoming", "b2"] and os.listdir(lay.venvs) == ["e2"]
    assert sorted(p.name for p in lay.run.glob("venv-*.lock")) == ["venv-e2.lock"]  # the dropped venv's went too
    assert handle({"command": "rollback", "dir": str(lay.root), "no_service": True})["release"] == made[-2]
    assert lay.release_ids() == made[-2:] and lay.current_rid() == made[-2]
    for keep in (0, -1, "3"):
        reply = handle({"command": "commit", "dir": str(lay.root), "release": made[-1], "keep": keep})
        assert not reply["ok"] and reply["exit_code"] == 2 and "at least 1" in reply["error"], reply
    assert lay.current_rid() == made[-2]
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edgelite", "deploy", str(tmp_path), "--host", "pi@192.0.2.1", "--keep", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "edgelite deploy: error: --keep 0: at least 1 release stays on the device (the current one); 2 or more "
        "leave one to roll back to"], r.stderr


def test_the_agent_keeps_the_files_of_its_last_jobs_only(pyz, tmp_path):  # noqa: F811
    """Each deploy leaves a detached job's log, reply and pid file in run/ (venv, commit: two or three a deploy).
    A device with 30 finished jobs and one still running starts a new one: the 20 newest finished stay, the
    running one is untouched, state files are not jobs. On the parent commit all 30 stayed, for ever."""
    import time

    from .test_agent import call as agent_call

    keep = 20  # edgelite.deploy.agent.jobs.KEEP_JOBS

    lay = Layout(tmp_path / "dev")
    lay.ensure()
    old = time.time() - 86400
    for n in range(30):
        name = f"venv-20260101T0000{n:02d}-000000"
        for suffix, text in ((".log", "pip ...\n"), (".json", '{"ok": true}'), (".pid", "1\n")):
            (lay.run / f"{name}{suffix}").write_text(text)
        os.utime(lay.run / f"{name}.json", (old + n, old + n))
    (lay.run / "commit-running.log").write_text("switch ...\n")  # no reply yet: still running
    (lay.run / "commit-running.pid").write_text(f"{os.getpid()}\n")
    (lay.run / "state.json").write_text("{}")
    os.utime(lay.run / "state.json", (old - 10, old - 10))
    code, started = agent_call(pyz, {"command": "status", "dir": str(lay.root), "detach": True}, tmp_path)
    assert code == 0 and started["job"], started
    finished = sorted(p.name[:-5] for p in lay.run.glob("venv-2026*.json"))
    assert finished == [f"venv-20260101T0000{n:02d}-000000" for n in range(30 - keep, 30)]
    assert not [p for p in lay.run.glob("venv-2026*") if p.name[:-4] not in finished and p.name[:-5] not in finished]
    assert (lay.run / "commit-running.log").is_file() and (lay.run / "commit-running.pid").is_file()
    assert (lay.run / "state.json").is_file()


def test_gc_drops_the_wheels_no_kept_venv_was_built_from(tmp_path):
    """Each --offline deploy with new pins pushes a ~100 MB wheelhouse (wheels/deps/<house>), each new build a
    wheel (wheels/edgelite/<digest>), and uv's wheel and binary (wheels/tools/); the parent commit removed none of
    them, ever. Venvs record what they were built from; gc keeps exactly that for the kept venvs. A kept venv
    made by an older agent (no record) keeps them all."""
    from edgelite.deploy.agent.status import gc

    lay = Layout(tmp_path / "dev")
    lay.ensure()
    w = lay.wheels

    def built_from(env: str, n: int, record: bool = True) -> list[Path]:
        files = [w / "edgelite" / f"d{n}" / "edgelite-0.1.0-py3-none-any.whl", w / "deps" / f"house{n}" / "numpy.whl",
                 w / f"constraints-{n}.txt", w / "tools" / f"uv-{n}-py3-none-any.whl", w / "tools" / f"uv-{n}-py3-none-any" / "uv"]
        for f in files:
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(b"x" * 1000)
        (lay.venvs / env).mkdir()
        info = {"wheels": [str(files[0]), str(files[1].parent), str(files[2]), str(files[3])]} if record else {}
        jsonfile.write_json(lay.venvs / env / ".ready", info)
        return files

    old = built_from("e1", 1)
    new = built_from("e2", 2)
    (lay.bundles / "b").mkdir()
    for rid, env in (("r1", "e1"), ("r2", "e2")):
        (lay.releases / rid).mkdir()
        jsonfile.write_json(lay.releases / rid / "release.json", {"id": rid, "bundle": "b", "venv": env, "seq": int(rid[1])})
        (lay.releases / rid / "run").write_text("#!/bin/sh\n")
    os.symlink("releases/r2", lay.current)
    gc(lay, keep=1)
    assert all(f.exists() for f in new) and not any(f.exists() for f in old)
    assert sorted(p.name for p in w.iterdir()) == ["constraints-2.txt", "deps", "edgelite", "tools"]
    legacy = built_from("e3", 3, record=False)
    (lay.releases / "r3").mkdir()
    jsonfile.write_json(lay.releases / "r3" / "release.json", {"id": "r3", "bundle": "b", "venv": "e3", "seq": 3})
    (lay.releases / "r3" / "run").write_text("#!/bin/sh\n")
    gc(lay, keep=2)
    assert all(f.exists() for f in new + legacy)


def _device_with_releases(root: Path, n: int) -> tuple[Layout, list[str]]:
    """A device folder (no service) with `n` releases written by the real agent, none switched to yet."""
    lay = Layout(root)
    lay.ensure()
    assert handle({"command": "configure", "dir": str(lay.root), "mode": "none", "user": "pi"})["ok"]
    (lay.bundles / "b1").mkdir()
    (lay.venvs / "e1").mkdir()
    (lay.venvs / "e1" / ".ready").write_text("{}")
    return lay, [handle({"command": "release", "dir": str(lay.root), "bundle": "b1", "env": "e1", "source": "0",
                         "http": "127.0.0.1:1"})["release"] for _ in range(n)]


def _cut_on_trial(lay: Layout, rid: str, prev: str, boot: str | None = None) -> None:
    """What commit does before the switch to `rid` (trial, then switch), then the power goes; `boot`: the trial's
    boot id rewritten to another boot's (the device came up again)."""
    from edgelite.deploy.agent.commit import _switch, _trial

    _trial(lay, rid, prev)
    _switch(lay, rid)
    if boot is not None:
        lay.trial.write_text(boot + "\n" + "\n".join(lay.trial.read_text().splitlines()[1:]) + "\n")


def test_a_release_still_on_trial_after_a_power_cut_gives_way_to_the_one_before(tmp_path):
    """The agent puts a switch on trial until the release proves healthy (a broken release would otherwise be
    what a device cut mid-deploy boots into, restarting until systemd gives up). Its run script, started in a
    later boot with the trial still there, points `current` back at the release before and exits for systemd
    to restart the service on it; in the same boot (the deploy is still proving it) it runs."""
    import subprocess

    from edgelite.deploy.agent.commit import boot_id

    lay, made = _device_with_releases(tmp_path / "dev", 2)
    assert handle({"command": "commit", "dir": str(lay.root), "release": made[0], "no_service": True})["ok"]
    assert not lay.trial.exists()  # proved (here: nothing to prove): no trial left behind
    _cut_on_trial(lay, made[1], made[0])
    run = lay.releases / made[1] / "run"

    same_boot = subprocess.run(["sh", str(run)], capture_output=True, text=True, timeout=30)
    assert same_boot.returncode == 127 and "back to" not in same_boot.stderr  # ran on (its venv is not real here)
    assert lay.current_rid() == made[1] and lay.trial.exists()

    _cut_on_trial(lay, made[1], made[0], boot="0" * 8 + boot_id()[8:])  # and the device came up again
    r = subprocess.run(["sh", str(run)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.strip() == (
        f"edgelite: release {made[1]} had not proved healthy when the device went down: back to release {made[0]}")
    assert lay.current_rid() == made[0] and not lay.trial.exists()
    assert lay.release_ids() == made[:1] and (lay.releases / f"{made[1]}.failed").is_dir()  # not rolled back to
    assert lay.deploys_log.read_text().splitlines()[-1].endswith(
        f" interrupted {made[1]}: the device went down before it proved healthy; back to {made[0]}")
    assert handle({"command": "status", "dir": str(lay.root)})["ok"]


def test_the_switch_history_is_bounded(tmp_path):
    """log/deploys.log gets one line a switch for the device's whole life: past 1 MB it becomes deploys.log.1
    (one older file kept), so a device deployed nightly for years does not fill its card with it."""
    from edgelite.deploy.agent.commit import HISTORY_MAX_BYTES

    lay, (rid,) = _device_with_releases(tmp_path / "dev", 1)
    old = "2026-01-01T00:00:00+0000 switch - -> r0\n" * (HISTORY_MAX_BYTES // 40 + 1)
    lay.deploys_log.write_text(old)
    assert handle({"command": "commit", "dir": str(lay.root), "release": rid, "no_service": True})["ok"]
    assert (lay.logs / "deploys.log.1").read_text() == old
    assert lay.deploys_log.read_text().splitlines()[-1].endswith(f" switch - -> {rid}")
    assert lay.deploys_log.stat().st_size < 1000


def test_a_release_on_trial_on_a_read_only_card_runs_rather_than_nothing(tmp_path):
    """The kernel remounts a card read-only after an I/O error: then `current` cannot be put back, and the
    release on trial runs (one stderr line says so) instead of failing at every start until systemd gives up."""
    import subprocess

    import pytest

    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    card = tmp_path / "card"
    card.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(card)], check=True)
    try:
        lay, made = _device_with_releases(card / "dev", 2)
        _cut_on_trial(lay, made[1], made[0], boot="another-boot")
        subprocess.run(["mount", "-o", "remount,ro", str(card)], check=True)
        r = subprocess.run(["sh", str(lay.releases / made[1] / "run")], capture_output=True, text=True, timeout=30)
        assert r.returncode == 127, r  # it ran on (its venv is not real here)
        assert f"edgelite: cannot switch back (a read-only card?): running release {made[1]} unproven" in r.stderr, r.stderr
        assert lay.current_rid() == made[1]
    finally:
        subprocess.run(["umount", "-l", str(card)], check=False)
