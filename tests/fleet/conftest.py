"""Session fixtures of the fleet tests: five real "devices" (users + sshds), one bundle in three versions,
one video. Built once; every test module shares them (the fleet's state carries from test to test)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .fleetkit import Fleet, missing_tools

ROOT = Path(__file__).resolve().parents[2]
N_DEVICES = 5


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    e.setdefault("ANSIBLE_NOCOLOR", "1")
    return e


@contextlib.contextmanager
def running_fleet(workdir: Path, n: int, prefix: str = "elfl"):
    """A Fleet of `n` devices, stopped (users removed) afterwards; skips where the rig cannot run."""
    why = missing_tools()
    if why:
        pytest.skip(why)
    pytest.importorskip("ansible", reason="edgelite fleet needs ansible-core: pip install 'edgelite[fleet]'")
    f = Fleet(workdir, n, prefix)
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    with running_fleet(tmp_path_factory.mktemp("fleet"), N_DEVICES) as f:
        yield f


@pytest.fixture(scope="session")
def bundles(tiny_bundle_built, tmp_path_factory) -> dict[str, Path]:
    """The tiny int8 bundle (tests/deploy/bundlekit.py, built once per run) as versions a, b, c: the same
    model, another manifest each (another bundle id)."""
    from edgelite.bundle import Bundle
    base = tmp_path_factory.mktemp("bundles")
    out = {"a": Path(shutil.copytree(tiny_bundle_built, base / "a"))}
    for n, name in enumerate(("b", "c"), 2):
        subprocess.run(["cp", "-r", str(base / "a"), str(base / name)], check=True)
        b = Bundle.load(base / name)
        b.info["version"] = n
        b.save()
        out[name] = base / name
    return out


@pytest.fixture(scope="session")
def video(tmp_path_factory) -> Path:
    from tests.deploy.bundlekit import write_video

    return write_video(tmp_path_factory.mktemp("media") / "colours.avi")
